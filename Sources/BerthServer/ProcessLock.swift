import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on a file next to what it guards, held for the life of the process.
/// The kernel drops it when the process dies, even by `kill -9`, so a stale lock never blocks
/// a restart.
public final class ProcessLock: Sendable {
    public let path: String
    private let descriptor: Int32

    public struct Held: Error, CustomStringConvertible {
        public var path: String
        public var holder: String
        public var description: String { "\(path) is locked by \(holder)" }
    }

    public init(path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let pid = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Held(path: path, holder: pid.isEmpty ? "another process" : "process \(pid)")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.path = path
        self.descriptor = fd
    }

    deinit {
        close(descriptor)
    }
}
