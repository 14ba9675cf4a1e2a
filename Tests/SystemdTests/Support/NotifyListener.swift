import BerthTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for systemd's notification socket: a datagram AF_UNIX socket bound in a temporary
/// folder (or in the abstract namespace), recording each message with the time it arrived.
final class NotifyListener: @unchecked Sendable {
    struct Message: Sendable {
        var at: Date
        var text: String
        /// What `onMessage` returned for it.
        var note: Bool?
        var fields: [String: String] {
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            return fields
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    let address: String
    private let descriptor: Int32
    private let lock = NSLock()
    private var received: [Message] = []
    private var thread: Thread?
    private var stopped = false
    /// Runs on the listener's thread as each message arrives, before the next is read; what it
    /// returns is kept with the message (e.g. "did the control socket answer right then").
    private let onMessage: @Sendable (String) -> Bool?

    /// Binds `path`, or the abstract name `@…` when `path` starts with `@`.
    init(path: String, onMessage: @escaping @Sendable (String) -> Bool? = { _ in nil }) throws {
        self.onMessage = onMessage
        address = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        let thread = Thread { [unowned self] in self.receiveLoop() }
        self.thread = thread
        thread.start()
    }

    private func receiveLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !lock.withLock({ stopped }) {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { continue }
            let text = String(decoding: buffer[0..<count], as: UTF8.self)
            let at = Date()
            let note = onMessage(text)
            lock.withLock { received.append(Message(at: at, text: text, note: note)) }
        }
    }

    var messages: [Message] { lock.withLock { received } }

    /// Messages that set `key` (e.g. "READY"), in order.
    func messages(with key: String) -> [Message] { messages.filter { $0.fields[key] != nil } }

    /// Waits until a message sets `key` (optionally to `value`), at most `timeout` seconds;
    /// returns the first such message.
    func wait(for key: String, value: String? = nil, after start: Date = .distantPast, timeout: TimeInterval = 30) -> Message? {
        var found: Message?
        _ = eventually(timeout: timeout, every: 0.01) {
            found = messages.first { $0.at >= start && $0.fields[key] != nil && (value == nil || $0.fields[key] == value) }
            return found != nil
        }
        return found
    }

    func stop() {
        lock.withLock { stopped = true }
        while thread?.isFinished == false { usleep(10_000) }
        close(descriptor)
        if !address.hasPrefix("@") { unlink(address) }
    }

    deinit {
        if !lock.withLock({ stopped }) { stop() }
    }
}

/// Whether something accepts connections on the UNIX socket at `path` right now.
func socketAccepts(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    } == 0
}
