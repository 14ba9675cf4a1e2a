public import BerthWire
public import Foundation
public import Hummingbird

/// The one error type that reaches HTTP: a code of SPEC.md and a message that says what to do.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var retryAfterSeconds: Int?

    public init(_ code: ErrorCode, _ message: String, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public static func invalid(field: String, _ message: String) -> APIError {
        APIError(.invalidArgument, "\(field): \(message)")
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public var status: HTTPResponse.Status { HTTPResponse.Status(code: code.httpStatus) }

    public var headers: HTTPFields {
        var fields: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { fields[.retryAfter] = String(retryAfterSeconds) }
        return fields
    }

    public var body: Data {
        (try? Wire.encoder().encode(ErrorBody(code: code.rawValue, message: message))) ?? Data()
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
