import Foundation

/// `nvidia-smi` as a shell script that prints output recorded from real GPU machines (UUIDs
/// made up), for discovery and telemetry without a GPU. The recordings are files beside it, so
/// a test can change what it reports (a GPU gone, a GPU busy) while berthd runs.
public struct FakeNvidiaSMI: Sendable {
    public let path: String
    let folder: String

    /// One H200, as `--query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` prints it.
    public static let oneH200 = "0, GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b6c, NVIDIA H200, 143771\n"

    /// An eight-GPU H200 box.
    public static let eightH200 =
        (0..<8).map { "\($0), GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b\(70 + $0), NVIDIA H200, 143771" }
        .joined(separator: "\n") + "\n"

    /// Two A100s, the first in MIG mode: the inventory, then `nvidia-smi -L`.
    public static let migInventory = """
        0, GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f, NVIDIA A100-SXM4-80GB, 81920
        1, GPU-9a1e6f20-4b3c-11ee-8c99-0242ac120002, NVIDIA A100-SXM4-80GB, 81920

        """
    public static let migList = """
        GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f)
          MIG 3g.40gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
          MIG 2g.20gb     Device  1: (UUID: MIG-0e5d6a1b-77f2-5b0c-8a3e-2f9d0c4b6e11)
          MIG 1g.10gb     Device  2: (UUID: MIG-7b2a9c4d-1e3f-5a6b-9c8d-0e1f2a3b4c5d)
        GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-9a1e6f20-4b3c-11ee-8c99-0242ac120002)

        """

    /// What a machine without a GPU (or with the driver unloaded) prints, and its exit status.
    public static let noDevices = "No devices were found\n"

    /// Writes the script into `directory`. `inventory` and `list` answer the discovery queries
    /// and `telemetry` the utilization query; a non-zero `status` makes every query print its
    /// text to stdout and exit with it, as nvidia-smi does with "No devices were found" (6).
    public init(in directory: TemporaryDirectory, inventory: String, list: String? = nil, telemetry: String = "", status: Int32 = 0) throws {
        folder = directory.file("nvidia-smi.d")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        path = directory.file("nvidia-smi")
        try #"""
        #!/bin/sh
        here="$(dirname "$0")/nvidia-smi.d"
        status=$(cat "$here/status")
        case "$*" in
        -L) file=list ;;
        *utilization.gpu*) file=telemetry ;;
        *--query-gpu=index,uuid,name,memory.total*) file=inventory ;;
        *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
        esac
        [ -f "$here/$file" ] || { echo "fake nvidia-smi: nothing recorded for $file" >&2; exit 2; }
        cat "$here/$file"
        exit "$status"
        """#.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        // Readable by a berthd run as another user.
        chmod(folder, 0o755)
        try record(inventory: inventory, list: list, telemetry: telemetry, status: status)
    }

    /// Replaces what it prints from now on.
    public func record(inventory: String, list: String? = nil, telemetry: String = "", status: Int32 = 0) throws {
        try write("status", "\(status)\n")
        try write("inventory", inventory)
        try write("telemetry", telemetry)
        if let list {
            try write("list", list)
        } else {
            try? FileManager.default.removeItem(atPath: "\(folder)/list")
        }
    }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: "\(folder)/\(name)", atomically: true, encoding: .utf8)
        chmod("\(folder)/\(name)", 0o644)
    }
}
