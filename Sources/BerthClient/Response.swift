public import BerthWire
public import FoundationEssentials

/// A complete response from berthd.
public struct Response: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data

    public init(status: Int, headers: [(String, String)], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, matched without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body decoded as `T` if the status is 2xx; otherwise the API error it carries. An empty
    /// body (a 204) decodes as `{}`, so a type with no required fields accepts it.
    public func decoded<T: Decodable>(as type: T.Type = T.self) throws(ClientError) -> T {
        try decoded { try Wire.decode(T.self, from: $0) }
    }

    /// The same for a type known to be `KeysAsSent`, which skips `Wire.decode`'s check at run
    /// time (a conformance lookup: a scan of every record in the CLI's binary).
    public func decoded<T: KeysAsSent>(as type: T.Type = T.self) throws(ClientError) -> T {
        try decoded { try Wire.decode(asSent: T.self, from: $0) }
    }

    private func decoded<T>(_ decode: (Data) throws -> T) throws(ClientError) -> T {
        guard (200..<300).contains(status) else { throw apiError }
        do {
            return try decode(body.isEmpty ? Data("{}".utf8) : body)
        } catch {
            throw .undecodable("the answer of berthd (status \(status)) is not a \(T.self): \(error)")
        }
    }

    /// The error a non-2xx response stands for. A body that is not an `ErrorBody` (a proxy, an
    /// older daemon) becomes `http-<status>` with the body's text as the message.
    public var apiError: ClientError {
        let retryAfter = header("Retry-After").flatMap { Int($0.trimmingBlanks()) }
        if let error = try? Wire.decoder().decode(ErrorBody.self, from: body) {
            return .api(status: status, body: error, retryAfter: retryAfter)
        }
        let text = String(decoding: body, as: UTF8.self).trimmingWhitespace()
        let message = text.isEmpty ? "berthd answered with status \(status)" : text
        return .api(status: status, body: ErrorBody(code: "http-\(status)", message: message), retryAfter: retryAfter)
    }
}

/// Everything that can go wrong talking to berthd, as the CLI reports it.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    /// No daemon on the other end: the socket is missing, refuses connections, or is not ours to open.
    case unreachable(path: String, reason: String)
    /// The connection broke or the daemon spoke something that is not HTTP.
    case transport(String)
    /// The daemon answered with an error status.
    case api(status: Int, body: ErrorBody, retryAfter: Int?)
    /// A 2xx answer whose body is not what the request promises.
    case undecodable(String)
    /// berthd took the connection but did not answer in time: stopped, wedged or overloaded.
    case timedOut(path: String, after: Duration, request: String)

    public var code: String {
        switch self {
        case .unreachable: "unreachable"
        case .transport: "transport"
        case .api(_, let body, _): body.error.code
        case .undecodable: "bad-response"
        case .timedOut: "timeout"
        }
    }

    public var message: String {
        switch self {
        case .unreachable(let path, let reason): "cannot connect to berthd at \(path): \(reason)"
        case .transport(let reason): reason
        case .api(_, let body, _): body.error.message
        case .undecodable(let reason): reason
        case .timedOut(let path, let limit, let request):
            """
            berthd at \(path) did not answer \(request) within \(limit.components.seconds) s; it may be stopped or wedged: \
            look with `systemctl status berthd` and its log (`journalctl -u berthd`), or wait longer with --timeout
            """
        }
    }

    public var exitStatus: ExitStatus {
        switch self {
        case .unreachable, .timedOut: .unreachable
        case .transport, .undecodable: .failure
        case .api(let status, _, _): ExitStatus(httpStatus: status)
        }
    }

    public var description: String { "\(code): \(message)" }
}

/// Percent-encoding for the pieces of a request target.
public enum PercentEncoding {
    /// Every byte but RFC 3986's unreserved characters is escaped, so a model id such as
    /// `amazon.nova-micro-v1:0` stays one path segment.
    public static func pathSegment(_ segment: String) -> String {
        var escaped = ""
        for byte in segment.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                escaped.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                escaped += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return escaped
    }

    /// `?a=1&b=2` from the items that have a value; empty when none has.
    public static func query(_ items: [(String, String?)]) -> String {
        let pairs = items.compactMap { name, value in
            value.map { "\(pathSegment(name))=\(pathSegment($0))" }
        }
        return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
    }
}
