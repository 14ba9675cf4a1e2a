import NIOCore
import Testing

@testable import BerthServer

/// The request timeout and malformed-request refusals, as a state machine given the time.
@Suite("How a request arrives")
struct RequestArrivalTests {
    static let timeout = TimeAmount.seconds(30)
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    func at(_ seconds: Int64) -> NIODeadline { t0 + .seconds(seconds) }

    @Test("a request that arrives whole in time is never refused")
    func wholeInTime() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.bytesArrived(now: t0) == .schedule(at(30)))
        #expect(state.headRead(now: at(1)) == .none)
        #expect(state.endRead() == .cancel)
        #expect(state.timerFired(now: at(30)) == .none)
        #expect(state.responseEnded() == .none)
        #expect(state.timerFired(now: at(90)) == .none)
    }

    @Test("half a request head that stalls is refused 408 at its deadline, not before")
    func stalledHead() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.bytesArrived(now: t0) == .schedule(at(30)))
        // More bytes (a trickle) do not move the deadline.
        #expect(state.bytesArrived(now: at(10)) == .none)
        #expect(state.bytesArrived(now: at(29)) == .none)
        #expect(state.timerFired(now: at(29)) == .schedule(at(30)))
        #expect(state.timerFired(now: at(30)) == .refuse(.timedOut))
        // Once closing, nothing else happens.
        #expect(state.bytesArrived(now: at(31)) == .none)
        #expect(state.timerFired(now: at(90)) == .none)
    }

    @Test("a head whose body stalls is closed without an answer, and the handler reading the body sees it fail")
    func stalledBody() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.timerFired(now: at(30)) == .close(.timedOut))
        // Closing makes the decoder report the cut-off body: that must reach the handler, or
        // Hummingbird would take the half body for a whole one.
        #expect(state.parseFailed("stream ended at an unexpected time") == .forward)
    }

    @Test("a body whose framing breaks fails for the handler reading it, and the connection closes after its answer")
    func brokenBody() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.parseFailed("invalid chunk size") == .forward)
        #expect(state.parseFailed("data received in error state") == .forward)
        #expect(state.timerFired(now: at(30)) == .none)
        #expect(state.responseEnded() == .close(.malformed("the request's body was not valid HTTP/1.1")))
    }

    @Test("a body still arriving after an early answer (413) is closed without a second answer")
    func stalledAfterEarlyAnswer() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.responseEnded() == .drain)
        #expect(state.timerFired(now: at(30)) == .close(.timedOut))
        // The handler is done with the body: the decoder's complaint at the close goes nowhere.
        #expect(state.parseFailed("stream ended at an unexpected time") == .none)
    }

    @Test("the rest of a body answered early (413) is read and dropped, and the connection closes at its end")
    func drainedAfterEarlyAnswer() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.bodyRead(1 << 20) == .none)
        #expect(state.answerEndsConnection)
        #expect(state.responseEnded() == .drain)
        #expect(state.isDraining)
        #expect(state.bodyRead(1 << 20) == .drop)
        #expect(state.bodyRead(1 << 20) == .drop)
        #expect(state.endRead() == .closeAfterAnswer)
        #expect(!state.isDraining)
        #expect(state.bytesArrived(now: at(1)) == .none)
        #expect(state.timerFired(now: at(30)) == .none)
    }

    @Test("a body answered early that goes on past the drain limit is cut off")
    func drainLimit() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.responseEnded() == .drain)
        #expect(state.bodyRead(RequestArrival.drainLimit) == .drop)
        #expect(state.bodyRead(1) == .closeAfterAnswer)
        #expect(state.bodyRead(1) == .none)
        #expect(state.endRead() == .cancel)
    }

    @Test("a request that sent Expect: 100-continue and is answered before its body is closed at once: its body will not come")
    func expectContinueAnsweredEarly() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0, expectsContinue: true) == .schedule(at(30)))
        #expect(state.answerEndsConnection)
        #expect(state.responseEnded() == .closeAfterAnswer)
        #expect(state.timerFired(now: at(30)) == .none)
    }

    @Test("an answer to a request read whole keeps the connection, and the next request's body is its own")
    func answerAfterWholeRequest() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.bodyRead(100) == .none)
        #expect(state.endRead() == .cancel)
        #expect(!state.answerEndsConnection)
        #expect(state.responseEnded() == .none)
        #expect(state.headRead(now: at(1)) == .schedule(at(31)))
        #expect(state.bodyRead(100) == .none)
        #expect(state.endRead() == .cancel)
        #expect(state.responseEnded() == .none)
    }

    @Test("the time a handler takes to answer does not count, and the next request's clock starts at its first byte")
    func answeringDoesNotCount() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.bytesArrived(now: t0) == .schedule(at(30)))
        #expect(state.headRead(now: t0) == .none)
        #expect(state.endRead() == .cancel)
        // The read that brought the end completes while the handler works.
        #expect(state.bytesArrived(now: at(1)) == .none)
        #expect(state.timerFired(now: at(100)) == .none)
        #expect(state.responseEnded() == .none)
        // An idle minute later, the next request begins.
        #expect(state.bytesArrived(now: at(160)) == .schedule(at(190)))
        #expect(state.headRead(now: at(160)) == .none)
        #expect(state.timerFired(now: at(190)) == .close(.timedOut))
    }

    @Test("bytes that are not HTTP between requests are refused at once")
    func malformedBetweenRequests() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.bytesArrived(now: t0) == .schedule(at(30)))
        #expect(state.parseFailed("bad") == .refuse(.malformed("bad")))
        #expect(state.timerFired(now: at(30)) == .none)
    }

    @Test("bytes that are not HTTP while an answer is under way are refused once it has gone out")
    func malformedWhileAnswering() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.endRead() == .cancel)
        #expect(state.parseFailed("bad") == .cancel)
        #expect(state.responseEnded() == .refuse(.malformed("bad")))
    }

    @Test("a pipelined second request gets its own deadline, from its head")
    func pipelined() {
        var state = RequestArrival(timeout: Self.timeout)
        #expect(state.headRead(now: t0) == .schedule(at(30)))
        #expect(state.endRead() == .cancel)
        #expect(state.headRead(now: at(1)) == .schedule(at(31)))
        #expect(state.responseEnded() == .none)
        #expect(state.timerFired(now: at(31)) == .close(.timedOut))
    }
}

@Suite("Connection gate")
struct ConnectionGateTests {
    @Test("admits up to its limit, and one more once a connection leaves")
    func admits() {
        let gate = ConnectionGate(limit: 2)
        #expect(gate.admit())
        #expect(gate.admit())
        #expect(!gate.admit())
        #expect(gate.count == 2)
        gate.release()
        #expect(gate.admit())
        #expect(!gate.admit())
    }
}
