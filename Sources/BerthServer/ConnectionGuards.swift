public import BerthConfig
import BerthWire
import Hummingbird
import HummingbirdCore
import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

/// How the control socket treats its clients (`[limits]` of the config): how many may be
/// connected at once, how long a request may take to arrive, how long a kept-alive connection
/// may sit idle. Both servers (the socket berthd binds, and one systemd passes in) use it.
public struct ConnectionPolicy: Sendable {
    public var maxConnections: Int
    public var requestTimeout: TimeAmount
    public var idleTimeout: TimeAmount

    public init(maxConnections: Int, requestTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.maxConnections = maxConnections
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
    }

    public init(limits: DaemonConfig.Limits) {
        self.init(
            maxConnections: limits.maxConnections,
            requestTimeout: .nanoseconds(Int64(limits.requestTimeoutSeconds * 1e9)),
            idleTimeout: .nanoseconds(Int64(limits.idleTimeoutSeconds * 1e9))
        )
    }

    /// Hummingbird's HTTP/1 settings for one server with this policy: its idle timeout, and two
    /// handlers per connection behind the HTTP decoder. One `ConnectionGate` counts the
    /// server's connections.
    func http1Configuration(logger: Logger) -> HTTP1Channel.Configuration {
        let gate = ConnectionGate(limit: maxConnections)
        let requestTimeout = self.requestTimeout
        return HTTP1Channel.Configuration(
            additionalChannelHandlers: [
                RequestArrivalHandler(timeout: requestTimeout, logger: logger),
                ConnectionLimitHandler(gate: gate, logger: logger),
            ],
            idleTimeout: idleTimeout
        )
    }
}

/// The server's open connections, counted against its limit. A connection is admitted only
/// while fewer than `limit` are open, and gives its place back when it closes.
final class ConnectionGate: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    var count: Int { open.load(ordering: .relaxed) }

    /// Takes a place if one is free.
    func admit() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() {
        open.subtract(1, ordering: .relaxed)
    }
}

/// A complete HTTP answer written from inside the pipeline, before (or instead of) the router:
/// the error shape of the API, then the connection closes.
enum PipelineAnswer {
    static func write(_ error: APIError, context: ChannelHandlerContext) {
        let body = ByteBuffer(bytes: error.body)
        var fields = error.headers
        fields[.contentLength] = String(body.readableBytes)
        fields[.connection] = "close"
        fields[.server] = "berthd/\(BerthVersion.current)"
        let head = HTTPResponse(status: error.status, headerFields: fields)
        context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil)
        let sent = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil)), promise: sent)
        let channel = context.channel
        sent.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Admits a connection if the server has room for it. A connection over the limit is not
/// served: once its request has arrived it is answered 503 `too-many-connections` with
/// `Retry-After: 1` and closed, and nothing it sent reaches the router.
final class ConnectionLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let gate: ConnectionGate
    private let logger: Logger
    private var admitted = false
    private var refused = false

    init(gate: ConnectionGate, logger: Logger) {
        self.gate = gate
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        admitted = gate.admit()
        refused = !admitted
        if refused {
            logger.notice("connection refused: the control socket has its limit of open connections", metadata: ["max_connections": "\(gate.limit)"])
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    private func leave() {
        if admitted {
            admitted = false
            gate.release()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard refused else {
            context.fireChannelRead(data)
            return
        }
        // The request is read to its end (the client may still be writing it), then refused.
        if case .end = unwrapInboundIn(data) {
            refused = false
            PipelineAnswer.write(
                APIError(
                    .tooManyConnections,
                    "berthd already serves its limit of \(gate.limit) connections ([limits] max_connections); retry in a moment, close idle connections, or raise the limit",
                    retryAfterSeconds: 1
                ),
                context: context
            )
        }
    }
}

/// How a request arrives, as a state machine with no I/O and the time given. A request must
/// arrive whole, head and body, within `timeout` of its first byte (the time its handler
/// takes to answer does not count; a connection with nothing to read is the idle timeout's
/// business), and must be well-formed HTTP/1. A request that fails either is refused with an
/// answer in the API's error shape when no other answer is under way, and its connection closes.
///
/// A request answered before its body has all arrived (a 413 once the body passes 1 MiB, or a
/// refusal that never reads it) ends its connection: the answer says `Connection: close`, the
/// rest of the body is read and dropped, up to `drainLimit` bytes, and the connection closes
/// when it ends. A client that writes its whole body before reading anything (most do) thus
/// finishes its write and reads the answer at once. Left alone, Hummingbird would stop reading
/// a `Connection: close` request after its answer and leave such a client blocked in its write
/// until the request timeout; and a kept-alive connection would carry on after a body the
/// daemon never meant to take. A client that sent `Expect: 100-continue` will not send the
/// body after a final answer, so its connection closes as soon as the answer is out.
///
/// One rule above the others: a handler reading a request's body must see a broken body fail,
/// never end. Hummingbird takes a body stream that stops without its end as a complete body,
/// so a parse error there (including the one the decoder raises when the connection closes
/// mid-body) is always passed on, never swallowed.
struct RequestArrival {
    enum Refusal: Equatable {
        case timedOut
        case malformed(String)
    }

    enum Action: Equatable {
        case none
        /// Wake at this time (replacing any earlier wake-up).
        case schedule(NIODeadline)
        case cancel
        /// Answer the refusal, then close.
        case refuse(Refusal)
        /// Close without a word: the request's handler is still waiting for its body, or has
        /// answered it already.
        case close(Refusal)
        /// Pass the parse error on to the handler reading the body, so its read fails.
        case forward
        /// The request was answered before its body arrived: read the rest and drop it, even
        /// if the handler has stopped reading.
        case drain
        /// Drop this part of the body.
        case drop
        /// The request answered early has ended (or sent more than `drainLimit`): close once
        /// the answer is out.
        case closeAfterAnswer
    }

    let timeout: TimeAmount
    /// Set while a request is arriving: from its first byte until its end is read.
    private(set) var deadline: NIODeadline?
    /// The head of the request now arriving was read and its end was not: its handler may be
    /// reading the body.
    private(set) var bodyOpen = false
    /// Requests whose head was read and whose response has not ended.
    private(set) var answering = 0
    /// The request whose body is open was answered already (a 413 before its whole body came):
    /// its body is read and dropped.
    private(set) var answeredEarly = false
    /// Bytes of that body dropped so far.
    private(set) var dropped = 0
    /// The request whose body is open sent `Expect: 100-continue`.
    private(set) var expectsContinue = false
    /// A refusal that waits for the response under way to end.
    private(set) var pending: Refusal?
    /// A parse error went to the handler reading the body: the connection ends after its answer.
    private(set) var broken = false
    private(set) var isClosing = false

    /// The body of a request answered early is being read and dropped.
    var isDraining: Bool { answeredEarly && !isClosing }

    /// How much of a body answered early is read and dropped before the connection is closed
    /// anyway: eight times the largest body the API takes.
    static let drainLimit = 8 << 20

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    /// Bytes were read. Between requests they are the first of the next one.
    mutating func bytesArrived(now: NIODeadline) -> Action {
        guard !isClosing, deadline == nil, answering == 0 else { return .none }
        return start(now)
    }

    mutating func headRead(now: NIODeadline, expectsContinue: Bool = false) -> Action {
        guard !isClosing else { return .none }
        answering += 1
        let action = deadline == nil ? start(now) : .none
        bodyOpen = true
        self.expectsContinue = expectsContinue
        return action
    }

    /// `bytes` of the open request's body were read: passed on, or dropped if it was answered.
    mutating func bodyRead(_ bytes: Int) -> Action {
        guard answeredEarly, !isClosing else { return .none }
        dropped += bytes
        guard dropped > Self.drainLimit else { return .drop }
        deadline = nil
        isClosing = true
        return .closeAfterAnswer
    }

    mutating func endRead() -> Action {
        deadline = nil
        bodyOpen = false
        if answeredEarly, !isClosing {
            isClosing = true
            return .closeAfterAnswer
        }
        answeredEarly = false
        return .cancel
    }

    /// Whether the answer now starting must say `Connection: close`: it answers the request
    /// whose body is still arriving, so the connection ends after it.
    var answerEndsConnection: Bool {
        bodyOpen && answering == 1
    }

    /// The bytes are not HTTP/1 (or not HTTP this server can take).
    mutating func parseFailed(_ reason: String) -> Action {
        if bodyOpen, !answeredEarly {
            deadline = nil
            broken = true
            return .forward
        }
        guard !isClosing else { return .none }
        deadline = nil
        if answeredEarly {
            isClosing = true
            return .close(.malformed(reason))
        }
        if answering > 0 {
            pending = pending ?? .malformed(reason)
            return .cancel
        }
        isClosing = true
        return .refuse(.malformed(reason))
    }

    mutating func responseEnded() -> Action {
        answering = max(0, answering - 1)
        guard answering == 0, !isClosing else { return .none }
        if broken {
            isClosing = true
            return .close(.malformed("the request's body was not valid HTTP/1.1"))
        }
        if let pending {
            self.pending = nil
            isClosing = true
            return .refuse(pending)
        }
        guard bodyOpen else { return .none }
        answeredEarly = true
        dropped = 0
        if expectsContinue {
            isClosing = true
            return .closeAfterAnswer
        }
        return .drain
    }

    mutating func timerFired(now: NIODeadline) -> Action {
        guard !isClosing, let deadline else { return .none }
        guard now >= deadline else { return .schedule(deadline) }
        self.deadline = nil
        isClosing = true
        return answering == 0 && !answeredEarly ? .refuse(.timedOut) : .close(.timedOut)
    }

    private mutating func start(_ now: NIODeadline) -> Action {
        let deadline = now + timeout
        self.deadline = deadline
        answeredEarly = false
        return .schedule(deadline)
    }
}

/// Refuses requests that do not arrive in time or are not HTTP/1: a client that sends half a
/// request and stalls, or trickles it, is answered 408 `request-timeout`; bytes the HTTP
/// decoder cannot parse are answered 400 `invalid-argument`, in the API's error shape rather
/// than Hummingbird's empty 400. Either way the connection then closes. It sits behind the
/// HTTP decoder and learns of bytes that do not yet make a request head from
/// `channelReadComplete`.
final class RequestArrivalHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var state: RequestArrival
    private let logger: Logger
    private var wakeUp: Scheduled<Void>?
    /// Done when an answer that ends the connection is written: the close waits for it.
    private var answerSent: EventLoopFuture<Void>?

    init(timeout: TimeAmount, logger: Logger) {
        self.state = RequestArrival(timeout: timeout)
        self.logger = logger
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        wakeUp?.cancel()
        wakeUp = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !state.isClosing else { return }
        let action =
            switch unwrapInboundIn(data) {
            case .head(let head):
                state.headRead(now: .now(), expectsContinue: head.headerFields[.expect]?.lowercased() == "100-continue")
            case .body(let bytes):
                state.bodyRead(bytes.readableBytes)
            case .end:
                state.endRead()
            }
        perform(action, context)
        switch action {
        case .drop, .closeAfterAnswer:
            // A body its handler no longer reads, or the connection ends here.
            break
        default:
            context.fireChannelRead(data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        perform(state.bytesArrived(now: .now()), context)
        // NIOAsyncChannel reads no more once its handler stops taking parts (Hummingbird stops
        // after answering a `Connection: close` request); a body being dropped is read anyway.
        if state.isDraining { context.read() }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let reason = Self.malformed(error) else {
            context.fireErrorCaught(error)
            return
        }
        let action = state.parseFailed(reason)
        if action == .forward {
            context.fireErrorCaught(error)
        } else {
            perform(action, context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where state.answerEndsConnection:
            head.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            if state.answerEndsConnection {
                let sent = context.eventLoop.makePromise(of: Void.self)
                sent.futureResult.cascade(to: promise)
                answerSent = sent.futureResult
                context.write(data, promise: sent)
            } else {
                context.write(data, promise: promise)
            }
            let action = state.responseEnded()
            if action != .none {
                // The answer goes out before anything that closes the connection.
                context.flush()
                perform(action, context)
            }
        default:
            context.write(data, promise: promise)
        }
    }

    /// What is wrong with the bytes, when `error` says they are not HTTP/1 we can take.
    static func malformed(_ error: any Error) -> String? {
        switch error {
        case ByteToMessageDecoderError.dataReceivedInErrorState(let underlying, _):
            malformed(underlying)
        case HTTPParserError.headerOverflow:
            "the request line and headers are over the limit (80 KiB); send shorter headers"
        case let error as HTTPParserError:
            "not a valid HTTP/1.1 request (\(error)); send a request line, headers and a body as its Content-Length says"
        case let error as HTTP1TypeConversionError:
            "not a valid HTTP/1.1 request (\(error)); send a method, a path starting with / and a Host header"
        default:
            nil
        }
    }

    private func perform(_ action: RequestArrival.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .none, .forward, .drop:
            break
        case .drain:
            context.read()
        case .schedule(let deadline):
            wakeUp?.cancel()
            let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            wakeUp = context.eventLoop.scheduleTask(deadline: deadline) {
                let (handler, context) = loopBound.value
                handler.wakeUp = nil
                handler.perform(handler.state.timerFired(now: .now()), context)
            }
        case .cancel:
            wakeUp?.cancel()
            wakeUp = nil
        case .closeAfterAnswer:
            wakeUp?.cancel()
            logger.debug("closing a connection whose request was answered before its body arrived", metadata: ["dropped_bytes": "\(state.dropped)"])
            let channel = context.channel
            (answerSent ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in channel.close(promise: nil) }
        case .close(let refusal):
            wakeUp?.cancel()
            log(refusal)
            context.close(promise: nil)
        case .refuse(let refusal):
            wakeUp?.cancel()
            log(refusal)
            let error =
                switch refusal {
                case .timedOut:
                    APIError(
                        .requestTimeout,
                        "the request did not arrive whole within \(Self.seconds(state.timeout)) s ([limits] request_timeout_seconds); send it at once, then wait for the answer"
                    )
                case .malformed(let reason):
                    APIError(.invalidArgument, reason)
                }
            PipelineAnswer.write(error, context: context)
        }
    }

    private func log(_ refusal: RequestArrival.Refusal) {
        switch refusal {
        case .timedOut:
            logger.info(
                "closing a connection whose request did not arrive in time",
                metadata: ["request_timeout_seconds": "\(Self.seconds(state.timeout))"]
            )
        case .malformed(let reason):
            logger.debug("closing a connection that sent a malformed request", metadata: ["reason": "\(reason)"])
        }
    }

    /// `30`, or `2.5`.
    static func seconds(_ amount: TimeAmount) -> String {
        let seconds = Double(amount.nanoseconds) / 1e9
        return seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
