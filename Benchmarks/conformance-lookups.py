# Lists the protocol conformance lookups a Swift program makes, each with the records it
# scanned and the Swift code that asked: what most of a `berth` command's CPU goes to
# (docs/benchmarks.md, "Where a CLI command's time goes"). A gdb script, for a release build
# with its symbols (not stripped):
#
#     gdb -q -batch -x Benchmarks/conformance-lookups.py -ex run --args .build/release/berth status \
#         2>/dev/null | grep '^lookup\|^total' | swift demangle --simplified
#
# Each line: records scanned, the protocol, the type (its symbol), and the first Swift frames
# that asked. A lookup made while another scans (to check a generic requirement of a match)
# splits the outer one's count in two. It breaks on two functions of the Swift runtime, so
# it follows the runtime's own names (Swift 6.3's, linked statically).
import subprocess

import gdb

records = [0]
lookups = []


def runtime_address(per_record):
    """The address of the runtime's lookup function, or of the lambda it calls for each record,
    from the binary's symbol table: both are local symbols of the runtime."""
    binary = gdb.current_progspace().filename
    table = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    for line in table.splitlines():
        fields = line.split()
        if len(fields) == 3 and "swift_conformsToProtocolMaybeInstantiateSuperclasses" in fields[2]:
            if ("ConformanceDescriptor" in fields[2]) == per_record and fields[2].startswith("_Z"):
                return int(fields[0], 16)
    raise gdb.GdbError("no conformance lookup in %s's symbols: a Swift 6.3 build, not stripped?" % binary)


class Record(gdb.Breakpoint):
    def stop(self):
        records[0] += 1
        return False


class Lookup(gdb.Breakpoint):
    def stop(self):
        # (metadata, protocol descriptor) in rsi and rdx: the result comes back through rdi.
        metadata = int(gdb.parse_and_eval("$rsi"))
        protocol = int(gdb.parse_and_eval("$rdx"))
        memory = gdb.selected_inferior()
        offset = int.from_bytes(memory.read_memory(protocol + 8, 4).tobytes(), "little", signed=True)
        name = gdb.parse_and_eval("(char *)%d" % (protocol + 8 + offset)).string()
        symbol = gdb.execute("info symbol %d" % metadata, to_string=True).split(" in section")[0].strip()
        frames, frame, depth = [], gdb.newest_frame().older(), 0
        while frame is not None and len(frames) < 4 and depth < 60:
            if (frame.name() or "").startswith("$s"):
                frames.append(frame.name())
            frame, depth = frame.older(), depth + 1
        lookups.append((records[0], name, symbol, frames))
        return False


def report(_event):
    ends = [start for start, *_ in lookups[1:]] + [records[0]]
    for (start, name, symbol, frames), end in zip(lookups, ends):
        if end > start:
            print("lookup %6d %s for %s | %s" % (end - start, name, symbol, " < ".join(frames)))
    scans = sum(1 for (start, *_), end in zip(lookups, ends) if end > start)
    print("total %d records scanned by %d of %d lookups" % (records[0], scans, len(lookups)))


Record("*%d" % runtime_address(per_record=True))
Lookup("*%d" % runtime_address(per_record=False))
gdb.events.exited.connect(report)
