public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A bare client of a UNIX stream socket, for tests that must send what no HTTP client would:
/// invalid UTF-8, truncated or malformed HTTP, half a request and then nothing.
public final class RawSocket {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public let fd: Int32
    private var buffered: [UInt8] = []
    /// The peer closed its side (a read returned 0).
    public private(set) var sawEOF = false
    /// Why the last `send` stopped short (`errno`): `EAGAIN` when the send timeout passed with
    /// the peer not reading, `EPIPE` or `ECONNRESET` when it had closed.
    public private(set) var sendError: Int32 = 0

    /// Connects to `path`. Reads give up after `readTimeout` (so a test cannot hang on a
    /// daemon that never answers) and report it as a failure; sends give up after it too.
    public init(path: String, readTimeout: TimeInterval = 30) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw Failure(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw Failure(description: "connect \(path): \(reason)")
        }
        var timeout = timeval(tv_sec: Int(readTimeout), tv_usec: Int((readTimeout - readTimeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    /// Sends all of `bytes`; returns false if the peer stopped reading (closed) first, which a
    /// server that answered early (413) may do.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                sendError = errno
                return false
            }
            offset += sent
        }
        return true
    }

    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Whether something can be read (or the peer closed) within `seconds`.
    public func readable(within seconds: Double) -> Bool {
        guard buffered.isEmpty else { return true }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, Int32(seconds * 1000)) > 0
    }

    /// Reads more into the buffer; false at EOF. Throws when the read timeout passes.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffered += chunk[0..<count]
                return true
            }
            if count == 0 {
                sawEOF = true
                return false
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure(description: "no answer within the read timeout") }
            // ECONNRESET and the like: the peer is gone.
            sawEOF = true
            return false
        }
    }

    /// Reads until the peer closes; returns what came.
    public func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffered = [] }
        return buffered
    }

    /// Reads one HTTP/1.1 response; nil if the peer closed before sending one. The answer to
    /// a HEAD request has no body (`bodyExpected` false).
    public func readResponse(bodyExpected: Bool = true) throws -> RawResponse? {
        var headEnd: Int?
        while headEnd == nil {
            headEnd = Self.find([13, 10, 13, 10], in: buffered)
            if headEnd == nil, try !fill() {
                if buffered.isEmpty { return nil }
                throw Failure(description: "the connection closed inside a response head: \(String(decoding: buffered, as: UTF8.self))")
            }
        }
        let head = String(decoding: buffered[..<headEnd!], as: UTF8.self)
        buffered.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw Failure(description: "not an HTTP status line: \(head)")
        }
        let headers = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]).lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let response = RawResponse(status: status, headers: headers, body: [])
        var body: [UInt8] = []
        if !bodyExpected {
            // Nothing to read.
        } else if let length = response.header("content-length").flatMap(Int.init) {
            while buffered.count < length {
                if try !fill() { throw Failure(description: "the connection closed inside a body of \(length) bytes") }
            }
            body = Array(buffered[..<length])
            buffered.removeFirst(length)
        } else if response.header("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                var lineEnd = Self.find([13, 10], in: buffered)
                while lineEnd == nil {
                    if try !fill() { throw Failure(description: "the connection closed inside a chunked body") }
                    lineEnd = Self.find([13, 10], in: buffered)
                }
                let sizeText = String(decoding: buffered[..<lineEnd!], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                    throw Failure(description: "bad chunk size '\(sizeText)'")
                }
                buffered.removeFirst(lineEnd! + 2)
                while buffered.count < size + 2 {
                    if try !fill() { throw Failure(description: "the connection closed inside a chunk") }
                }
                body += buffered[..<size]
                buffered.removeFirst(size + 2)
                if size == 0 { break }
            }
        } else if !(100..<200).contains(status), status != 204, status != 304 {
            body = try readToEnd()
        }
        return RawResponse(status: status, headers: headers, body: body)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<start + needle.count]) == needle { return start }
        }
        return nil
    }
}

/// An HTTP response as it came off the wire.
public struct RawResponse: Sendable, CustomStringConvertible {
    public var status: Int
    /// Names in lower case.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.0 == name.lowercased() }?.1
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The API's error shape, `{"error":{"code","message"}}`: its code and message, or nil.
    public var error: (code: String, message: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            object.count == 1, let detail = object["error"] as? [String: Any],
            let code = detail["code"] as? String, let message = detail["message"] as? String,
            !code.isEmpty, !message.isEmpty
        else { return nil }
        return (code, message)
    }

    public var description: String { "\(status) \(text.prefix(300))" }
}
