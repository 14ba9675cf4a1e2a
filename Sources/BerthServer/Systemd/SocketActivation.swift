public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket that systemd (or `systemd-socket-activate`) opened and passed to berthd:
/// sd_listen_fds(3) without libsystemd. systemd owns the socket file, so berthd neither binds,
/// nor changes the file's mode, nor removes it.
public struct ListeningSocket: Sendable, Equatable {
    /// The descriptor: the first passed one, 3.
    public var descriptor: Int32
    /// The socket's path, when it is a named AF_UNIX socket; for logs.
    public var path: String?

    /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: Int32 = 3

    public struct Unusable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The socket passed to this process, if `LISTEN_PID` is our pid and `LISTEN_FDS` ≥ 1.
    /// Marks the passed descriptors close-on-exec (runners must not inherit the control socket)
    /// and removes the `LISTEN_*` variables so runners do not take them as theirs.
    /// Throws when descriptor 3 is not a listening stream socket.
    public static func passed(
        environment: [String: String],
        pid: Int32 = ProcessInfo.processInfo.processIdentifier
    ) throws(Unusable) -> ListeningSocket? {
        guard let owner = environment["LISTEN_PID"], Int32(owner) == pid,
            let countText = environment["LISTEN_FDS"], let count = Int32(countText), count >= 1
        else {
            return nil
        }
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) }
        for descriptor in firstDescriptor..<(firstDescriptor + count) {
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
        let descriptor = firstDescriptor
        guard socketOption(descriptor, SO_TYPE) == Int32(SOCK_STREAM.rawValue) else {
            throw Unusable(description: "descriptor 3 from the service manager is not a stream socket; the socket unit needs ListenStream=")
        }
        guard socketOption(descriptor, SO_ACCEPTCONN) == 1 else {
            throw Unusable(description: "descriptor 3 from the service manager is not listening; the socket unit needs Accept=no")
        }
        return ListeningSocket(descriptor: descriptor, path: unixPath(descriptor))
    }

    private static func socketOption(_ descriptor: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(descriptor, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
    }

    /// The path an AF_UNIX socket is bound to; `@name` for the abstract namespace.
    static func unixPath(_ descriptor: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        let offset = MemoryLayout.offset(of: \sockaddr_un.sun_path)!
        guard result == 0, address.sun_family == sa_family_t(AF_UNIX), Int(length) > offset else { return nil }
        let bytes = withUnsafeBytes(of: &address.sun_path) { Array($0.prefix(Int(length) - offset)) }
        if bytes.first == 0 {
            return "@" + String(decoding: bytes.dropFirst(), as: UTF8.self)
        }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
