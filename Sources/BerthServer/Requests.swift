import BerthCore
import BerthWire
import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Reading request bodies strictly: a JSON object of known fields, each of the right type.
enum Requests {
    static func body(_ request: Request, context: BerthRequestContext) async throws -> Data {
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: context.maxUploadSize)
            return Data(buffer: buffer)
        } catch is NIOTooManyBytesError {
            throw APIError(.payloadTooLarge, "request body is over 1 MiB: send a smaller body")
        } catch {
            // The body broke off or its framing is not HTTP/1.1 (RequestArrivalHandler passes
            // such errors on, so a cut-off body is never taken for a whole one): the client's
            // mistake, not the daemon's.
            guard let reason = RequestArrivalHandler.malformed(error) else { throw error }
            throw APIError(.invalidArgument, "request body: \(reason)")
        }
    }

    /// Decodes a request body in one pass of JSONDecoder when it is well-formed; a body it does
    /// not take goes through `strictDecode`, which says what is wrong.
    static func decode<T: StrictBody>(_ type: T.Type, from data: Data) throws -> T {
        if let value = try? fastDecoder(for: T.self).decode(StrictEnvelope<T>.self, from: data).value { return value }
        return try strictDecode(T.self, from: data)
    }

    /// The wire decoder, but a top-level key is accepted only in the exact snake_case form of
    /// one of `T`'s fields; any other comes out as a name no field has, which the envelope refuses.
    static func fastDecoder<T: StrictBody>(for type: T.Type) -> JSONDecoder {
        let fields = StrictFields.of(T.self).bySnakeCase
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = Wire.dateDecoding
        decoder.keyDecodingStrategy = .custom { path in
            let raw = path.last!.stringValue
            return NamedKey(path.count == 1 ? fields[raw] ?? "\u{0}" + raw : Wire.camelCase(raw))
        }
        return decoder
    }

    /// The fields of a request type, worked out once per type.
    struct StrictFields: Sendable {
        var names: Set<String>
        /// The wire (snake_case) name of each field → its name in Swift.
        var bySnakeCase: [String: String]

        private static let known = Mutex<[ObjectIdentifier: StrictFields]>([:])

        static func of<T: StrictBody>(_ type: T.Type) -> StrictFields {
            known.withLock { known in
                if let fields = known[ObjectIdentifier(type)] { return fields }
                let names = T.CodingKeys.allCases.map(\.stringValue)
                let fields = StrictFields(
                    names: Set(names),
                    bySnakeCase: Dictionary(uniqueKeysWithValues: names.map { (Wire.snakeCase($0), $0) })
                )
                known[ObjectIdentifier(type)] = fields
                return fields
            }
        }
    }

    /// A request body whose keys are all fields of `T`, decoded as `T`.
    struct StrictEnvelope<T: StrictBody>: Decodable {
        struct UnknownField: Error {}
        var value: T

        init(from decoder: any Decoder) throws {
            let known = StrictFields.of(T.self).names
            guard try decoder.container(keyedBy: NamedKey.self).allKeys.allSatisfy({ known.contains($0.stringValue) }) else {
                throw UnknownField()
            }
            value = try T(from: decoder)
        }
    }

    /// Reads a body field by field, so that whatever is wrong with it is named in the error.
    static func strictDecode<T: StrictBody>(_ type: T.Type, from data: Data) throws -> T {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw APIError(.invalidArgument, "request body: not valid JSON (\(Self.reason(error))); send a JSON object")
        }
        guard let fields = object as? [String: Any] else {
            throw APIError(.invalidArgument, "request body: expected a JSON object of fields")
        }
        let allowed = StrictFields.of(T.self).names
        for key in fields.keys.sorted() where !allowed.contains(Wire.camelCase(key)) || key != Wire.snakeCase(Wire.camelCase(key)) {
            let names = T.CodingKeys.allCases.map { Wire.snakeCase($0.stringValue) }.joined(separator: ", ")
            throw APIError.invalid(field: key, "unknown field; the known fields are \(names)")
        }
        do {
            return try Wire.decoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
                let field = Self.unrepresentableNumber(in: fields, as: T.self)
            {
                throw APIError.invalid(field: field, "\(fields[field].map { "\($0)" } ?? "") is not a whole number in range; send an integer")
            }
            throw Self.apiError(error)
        }
    }

    /// The decoder reports a number that does not fit its field (1.5 or 1e30 for an integer)
    /// without naming the field; find it by putting 0 in each numeric field in turn.
    static func unrepresentableNumber<T: StrictBody>(in fields: [String: Any], as type: T.Type) -> String? {
        for key in fields.keys.sorted() where fields[key] is NSNumber {
            var copy = fields
            copy[key] = 0
            guard let data = try? JSONSerialization.data(withJSONObject: copy) else { continue }
            do {
                _ = try Wire.decoder().decode(T.self, from: data)
                return key
            } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
                continue
            } catch {
                return key
            }
        }
        return nil
    }

    static func apiError(_ error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? Wire.snakeCase($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .invalid(field: path(context.codingPath + [key]), "is required")
        case .typeMismatch(let type, let context):
            return .invalid(field: path(context.codingPath), "expected \(Self.typeName(type))")
        case .valueNotFound(let type, let context):
            return .invalid(field: path(context.codingPath), "expected \(Self.typeName(type)), found null")
        case .dataCorrupted(let context):
            return .invalid(field: path(context.codingPath), "invalid value (\(context.debugDescription))")
        @unknown default:
            return APIError(.invalidArgument, "request body: \(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Double.Type: "a number"
        default: "\(type)"
        }
    }

    static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        return (nsError.userInfo[NSDebugDescriptionErrorKey] as? String) ?? nsError.localizedDescription
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        respond(status: status.code, body: try Wire.encode(value))
    }

    static func respond(status: Int, body: Data) -> Response {
        Response(
            status: HTTPResponse.Status(code: status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
        )
    }
}
