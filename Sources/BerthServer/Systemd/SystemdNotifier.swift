public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Sends sd_notify(3) messages to the service manager without libsystemd: one datagram per
/// message, newline-separated `KEY=VALUE` assignments, to the AF_UNIX socket named in
/// `$NOTIFY_SOCKET` (a leading `@` names the abstract namespace).
public struct SystemdNotifier: Sendable {
    /// The `sockaddr_un` bytes of the notification socket, and their length.
    private let address: sockaddr_un
    private let addressLength: socklen_t
    public let socketPath: String

    /// `nil` when berthd was not started by systemd (no `NOTIFY_SOCKET`) or the path is unusable.
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], path.count > 1, path.hasPrefix("/") || path.hasPrefix("@") else {
            return nil
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes[0] == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        self.address = address
        // An abstract address is exactly its bytes long; a path one includes its trailing NUL.
        self.addressLength = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1))
        self.socketPath = path
    }

    /// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`). Returns whether the datagram went out;
    /// a service manager that went away is not berthd's failure, so callers may ignore it.
    @discardableResult
    public func send(_ state: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = self.address
        let bytes = Array(state.utf8)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
        return sent == bytes.count
    }

    /// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants it next to `RELOADING=1`.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}

/// The watchdog systemd asks for with `WatchdogSec=`: `$WATCHDOG_USEC`, meant for us when
/// `$WATCHDOG_PID` is unset or is our pid (sd_watchdog_enabled(3)).
public enum SystemdWatchdog {
    /// How often to send `WATCHDOG=1`: half the timeout, as sd_watchdog_enabled(3) advises;
    /// `nil` when no watchdog is asked of this process.
    public static func pingInterval(environment: [String: String], pid: Int32 = ProcessInfo.processInfo.processIdentifier) -> Duration? {
        guard let raw = environment["WATCHDOG_USEC"], let usec = UInt64(raw), usec > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
        return .microseconds(Int64(usec / 2))
    }
}
