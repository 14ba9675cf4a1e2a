import BerthTestSupport
import BerthWire
import Testing

/// What every command line has: `--version`, and a mistyped subcommand that says what it meant.
/// No daemon is needed: nothing here reaches the socket.
@Suite("Command line")
struct CommandLineTests {
    @Test("berth --version and berthd --version print the version and exit 0", arguments: ["berth", "berthd"])
    func version(program: String) throws {
        let result = try Products.run(Products.path(program), ["--version"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == BerthVersion.current + "\n", "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
    }

    @Test(
        "a mistyped subcommand is refused as a usage error naming the closest one",
        arguments: [
            (["reserv", "x"], "unknown command 'reserv'; did you mean 'reserve'?"),
            (["jbos"], "unknown command 'jbos'; did you mean 'jobs'?"),
            (["--socket", "/nonexistent.sock", "reservation"], "unknown command 'reservation'; did you mean 'reservations'?"),
            (["--json", "stauts"], "unknown command 'stauts'; did you mean 'status'?"),
        ]
    )
    func suggestion(arguments: [String], message: String) throws {
        let result = try Products.run(Products.path("berth"), arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr == "berth: invalid-argument: \(message)\n", "\(result)")
        #expect(result.stdout.isEmpty, "\(result)")
    }

    @Test("a word close to no subcommand is answered with the list of them")
    func noCloseCommand() throws {
        let result = try Products.run(Products.path("berth"), ["frobnicate"])
        #expect(result.status == 2, "\(result)")
        #expect(
            result.stderr.hasPrefix(
                "berth: invalid-argument: unknown command 'frobnicate'; the commands are status, units, models, reserve, reservations,"
            ),
            "\(result)"
        )
        #expect(result.stderr.contains("usage"), "\(result)")
    }

    @Test("a known subcommand with a stray argument keeps ArgumentParser's own message")
    func knownCommand() throws {
        let result = try Products.run(Products.path("berth"), ["jobs", "7", "extra"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("'extra'") && !result.stderr.contains("unknown command"), "\(result)")
    }

    /// One Foundation-only call in the CLI's modules links all of swift-corelibs-foundation and
    /// ICU into `berth`, and with them a quarter of the conformance records every command scans
    /// as it starts (docs/benchmarks.md). The debug build links dynamically, so its needed
    /// libraries say whether that happened.
    @Test("the berth CLI links FoundationEssentials and not Foundation")
    func noFoundation() throws {
        let result = try Products.run("/usr/bin/readelf", ["--dynamic", Products.path("berth")])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("[libFoundationEssentials.so]"), "\(result.stdout)")
        #expect(!result.stdout.contains("[libFoundation.so]"), "berth needs libFoundation.so:\n\(result.stdout)")
        #expect(!result.stdout.contains("[libFoundationInternationalization.so]"), "\(result.stdout)")
    }
}
