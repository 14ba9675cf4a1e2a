import NIOCore
import NIOHTTP1

/// What one connection did: the latency of each answered call, and what failed.
struct CallTally: Sendable {
    /// Nanoseconds from writing a request to reading the end of its answer, for 2xx answers.
    var latencies: [Int64] = []
    var failures = 0
    /// The first failure, as the server or the connection put it.
    var firstFailure: String?

    mutating func fail(_ reason: String) {
        failures += 1
        if firstFailure == nil { firstFailure = reason }
    }

    mutating func merge(_ other: CallTally) {
        latencies += other.latencies
        failures += other.failures
        if firstFailure == nil { firstFailure = other.firstFailure }
    }
}

/// One keep-alive connection sending the same request back to back, one at a time, until the
/// deadline: the next request goes out as soon as the previous answer has ended, from the event
/// loop itself, so the figures are the server's and not the client's scheduling. It closes the
/// connection at the deadline, or when the server asks to, and then reports its tally.
final class CallLoop: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let template: CallTemplate
    private let connection: Int
    private var calls = 0
    private let deadline: NIODeadline
    private let done: EventLoopPromise<CallTally>

    private var tally = CallTally()
    private var sentAt: NIODeadline?
    private var status: HTTPResponseStatus = .ok
    private var keepAlive = true
    /// The body of a failed answer, kept for the first failure only.
    private var failureBody: ByteBuffer?
    private var reported = false

    init(template: CallTemplate, connection: Int, deadline: NIODeadline, done: EventLoopPromise<CallTally>) {
        self.template = template
        self.connection = connection
        self.deadline = deadline
        self.done = done
        tally.latencies.reserveCapacity(4096)
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response):
            status = response.status
            keepAlive = response.isKeepAlive
            failureBody = (200..<300).contains(response.status.code) || tally.firstFailure != nil ? nil : ByteBuffer()
        case .body(var chunk):
            failureBody?.writeBuffer(&chunk)
        case .end:
            guard let sentAt else { return }
            self.sentAt = nil
            if (200..<300).contains(status.code) {
                tally.latencies.append((NIODeadline.now() - sentAt).nanoseconds)
            } else {
                let text = failureBody.map { String(buffer: $0) } ?? ""
                tally.fail("HTTP \(status.code) \(text)")
            }
            if keepAlive && NIODeadline.now() < deadline {
                send(context: context)
            } else {
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if sentAt != nil { tally.fail("the server closed the connection before answering") }
        report()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        tally.fail("\(error)")
        sentAt = nil
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        report()
    }

    private func send(context: ChannelHandlerContext) {
        let (head, body) = template.vary?(connection, calls) ?? (template.head, template.body)
        calls += 1
        sentAt = NIODeadline.now()
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func report() {
        guard !reported else { return }
        reported = true
        done.succeed(tally)
    }
}
