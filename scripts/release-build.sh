#!/usr/bin/env bash
# The release build that `make install`, every benchmark and the GPU check's pack share, so
# that they build the same binaries into the same folder (different flags would rebuild
# everything each time). Arguments go on to `swift build` (`--product berth`, `--show-bin-path`).
#
# - `--static-swift-stdlib` with BERTH_STATIC_CLI=1 (Package.swift): the Swift runtime linked
#   in, and `berth` a fully static executable that starts no dynamic loader.
# - `-disable-concrete-type-metadata-mangled-name-accessors`, for every module, dependencies
#   included: code reaches a concrete generic type's metadata (`Set<Name>`,
#   `KeyedDecodingContainer<X.CodingKeys>`) through an accessor function that passes the
#   conformances it needs, rather than through a mangled name that the runtime demangles at the
#   first use, looking each conformance up again. Each such lookup scans every conformance
#   record in the binary (about 5,400 in `berth`); without those lookups `berth status` runs
#   26 % fewer instructions (docs/benchmarks.md). It costs a little code size and changes
#   nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
if ! command -v "$swift" >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then swift=/opt/swift/usr/bin/swift; fi
export BERTH_STATIC_CLI=1
exec "$swift" build -c release --static-swift-stdlib \
    -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors "$@"
