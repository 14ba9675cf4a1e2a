import ArgumentParser
import BerthClient
import BerthWire
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// Flags every subcommand takes: where the daemon is and how to print what it says.
struct GlobalOptions: ParsableArguments {
    static let defaultSocketPath = "/run/berth/berthd.sock"

    @Option(
        help: ArgumentHelp(
            "The control socket of berthd (default: $BERTH_SOCKET, else \(Self.defaultSocketPath)).",
            valueName: "path"
        )
    )
    var socket: String?

    @Flag(help: "Print the API's JSON document instead of a table.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "Seconds to wait for each answer of berthd (default: $BERTH_TIMEOUT, else \(Int(Self.defaultTimeout))).",
            valueName: "seconds"
        )
    )
    var timeout: Double?

    static let defaultTimeout: Double = 30

    /// How long one exchange may take; a bad $BERTH_TIMEOUT is a usage error, not ignored.
    var timeoutDuration: Duration {
        get throws(CommandFailure) {
            var seconds = Self.defaultTimeout
            if let timeout {
                seconds = timeout
            } else if let text = ProcessInfo.processInfo.environment["BERTH_TIMEOUT"], !text.isEmpty {
                guard let value = Double(text) else {
                    throw .invalidArgument("BERTH_TIMEOUT: '\(text)' is not a number of seconds")
                }
                seconds = value
            }
            guard seconds > 0, seconds <= 86_400 else {
                throw .invalidArgument("--timeout: must be more than 0 and at most 86400 seconds, got \(seconds)")
            }
            return .milliseconds(Int64(seconds * 1000))
        }
    }

    /// A connection to berthd for one exchange at a time, with the deadline above.
    var connection: ControlConnection {
        get throws(CommandFailure) { ControlConnection(socketPath: socketPath, timeout: try timeoutDuration) }
    }

    var socketPath: String {
        if let socket, !socket.isEmpty { return socket }
        if let fromEnvironment = ProcessInfo.processInfo.environment["BERTH_SOCKET"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return Self.defaultSocketPath
    }

    /// One request to berthd: the decoded 2xx answer and its body as received. A request that
    /// cannot act twice (a GET, or one with an `Idempotency-Key`) is retried once if the
    /// connection breaks mid-way.
    func call<T: Decodable>(
        _ type: T.Type,
        _ method: String,
        _ path: String,
        body: RequestBody? = nil,
        idempotencyKey: String? = nil
    ) throws(CommandFailure) -> Reply<T> {
        try exchange(method, path, body: body, idempotencyKey: idempotencyKey) { response throws(ClientError) in
            try response.decoded(as: T.self)
        }
    }

    /// The same for an answer read as sent (`KeysAsSent`), chosen where the type is known, so
    /// that decoding it needs no conformance lookup to find out.
    func call<T: KeysAsSent>(
        _ type: T.Type,
        _ method: String,
        _ path: String,
        body: RequestBody? = nil,
        idempotencyKey: String? = nil
    ) throws(CommandFailure) -> Reply<T> {
        try exchange(method, path, body: body, idempotencyKey: idempotencyKey) { response throws(ClientError) in
            try response.decoded(as: T.self)
        }
    }

    private func exchange<T>(
        _ method: String,
        _ path: String,
        body: RequestBody?,
        idempotencyKey: String?,
        decode: (Response) throws(ClientError) -> T
    ) throws(CommandFailure) -> Reply<T> {
        let client = try connection
        let headers = idempotencyKey.map { [("Idempotency-Key", $0)] } ?? []
        let retryable = method == "GET" || idempotencyKey != nil
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try client.send(method: method, path: path, body: body?.data, headers: headers)
                return Reply(value: try decode(response), body: response.body)
            } catch {
                if case .transport = error, retryable, attempt < 2 { continue }
                throw CommandFailure(error)
            }
        }
    }

    /// Prints the answer: its JSON document under `--json`, else what `human` makes of it.
    func show<T>(_ reply: Reply<T>, human: (T) -> String) {
        if json {
            if !reply.body.isEmpty { print(JSONDocument.pretty(reply.body)) }
        } else {
            print(human(reply.value))
        }
    }
}

/// A request's JSON body, encoded before it is sent.
struct RequestBody {
    var data: Data

    /// A request type that does not write its own keys: the encoder converts them to snake_case.
    static func json(_ request: some Encodable) throws(CommandFailure) -> RequestBody {
        try encoded { try Wire.encoder().encode(request) }
    }

    /// A request type that writes its own snake_case keys, chosen where the type is known: no
    /// key conversion, which costs three conformance lookups (scans of the whole binary).
    static func json(_ request: some SnakeCaseEncodable) throws(CommandFailure) -> RequestBody {
        try encoded { try Wire.encode(asWritten: request) }
    }

    private static func encoded(_ encode: () throws -> Data) throws(CommandFailure) -> RequestBody {
        do {
            return RequestBody(data: try encode())
        } catch {
            throw CommandFailure(code: "internal", message: "cannot encode the request: \(error)", status: .failure)
        }
    }
}

/// A decoded answer and the bytes it came from, for `--json`.
struct Reply<T> {
    var value: T
    var body: Data
}

/// What a subcommand reports on stderr as `berth: <code>: <message>`, and its exit status.
struct CommandFailure: Error {
    var code: String
    var message: String
    var status: ExitStatus

    static func invalidArgument(_ message: String) -> CommandFailure {
        CommandFailure(code: "invalid-argument", message: message, status: .usage)
    }

    init(code: String, message: String, status: ExitStatus) {
        self.code = code
        self.message = message
        self.status = status
    }

    init(_ error: ClientError) {
        self.init(code: error.code, message: error.message, status: error.exitStatus)
        switch error {
        case .unreachable:
            message += "; check that berthd is running and that --socket or BERTH_SOCKET names its socket"
        case .api(_, _, let retryAfter?) where status == .throttled && !message.contains("retry after"):
            message += " (retry after \(retryAfter)s)"
        default:
            break
        }
    }

    func report() {
        StandardStream.write("berth: \(code): \(message)\n", to: STDERR_FILENO)
    }
}
