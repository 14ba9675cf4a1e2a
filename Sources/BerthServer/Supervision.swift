import BerthExecutors
import Foundation
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Wake-ups for a service's loop: rings that come while it works coalesce into one, and none
/// is lost.
struct WakeUps: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func ring() { continuation.yield() }

    /// No more wake-ups: a loop waiting in `next` stops waiting.
    func finish() { continuation.finish() }

    func makeIterator() -> AsyncStream<Void>.Iterator { stream.makeAsyncIterator() }

    /// Waits for a ring or for `timeout`; false once the wake-ups are finished or the task is
    /// cancelled, which is the loop's cue to end.
    func next(_ iterator: inout AsyncStream<Void>.Iterator, within timeout: Duration, clock: any Clock<Duration>) async -> Bool {
        await withDiscardingTaskGroup(returning: Bool.self) { group in
            group.addTask {
                // The timer rings the same stream, so waiting needs one iterator and no second waiter.
                do {
                    try await clock.sleep(for: timeout, tolerance: nil)
                    self.ring()
                } catch {}
            }
            let woken = await iterator.next() != nil
            group.cancelAll()
            return woken
        }
    }
}

/// The skeleton both supervisors share: a reconcile pass at every wake-up and at least every
/// `interval`; work a pass starts that outlives it (following a runner, a kill timer, a health
/// check) runs as a child task of the service's `run()`, so a shutdown waits for it; and the
/// stop that gives runners a grace period between SIGTERM and SIGKILL.
final class Supervision: Sendable {
    private let wakeUps = WakeUps()
    private let work: AsyncStream<@Sendable () async -> Void>
    private let workQueue: AsyncStream<@Sendable () async -> Void>.Continuation
    private let stopping = Mutex(false)
    let interval: Duration
    let clock: any Clock<Duration>

    init(interval: Duration, clock: any Clock<Duration> = ContinuousClock()) {
        self.interval = interval
        self.clock = clock
        (work, workQueue) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
    }

    func wake() { wakeUps.ring() }

    /// True from the moment a shutdown begins: no runner may be started after it.
    var isStopping: Bool { stopping.withLock { $0 } }

    /// Runs `operation` as a child of `run()`. Work handed over after the service has stopped is
    /// dropped: by then the stop has recorded how every runner ended.
    func detach(_ operation: @escaping @Sendable () async -> Void) {
        workQueue.yield(operation)
    }

    /// Runs `reconcile` until a graceful shutdown or cancellation, then `stop`; returns when
    /// every piece of detached work has ended too.
    func run(reconcile: @escaping @Sendable () async -> Void, stop: @escaping @Sendable () async -> Void) async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await withGracefulShutdownHandler {
                    var wakeUps = self.wakeUps.makeIterator()
                    repeat {
                        await reconcile()
                    } while await self.wakeUps.next(&wakeUps, within: self.interval, clock: self.clock) && !self.isStopping
                } onGracefulShutdown: {
                    self.beginStop()
                }
                self.beginStop()
                await stop()
                self.workQueue.finish()
            }
            for await operation in self.work {
                group.addTask { await operation() }
            }
        }
    }

    private func beginStop() {
        stopping.withLock { $0 = true }
        wakeUps.finish()
    }

    /// Whether `runner` ended within `timeout`.
    func ended(_ runner: any Runner, within timeout: Duration) async -> Bool {
        if runner.hasExited { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await runner.exitStatus() != nil }
            group.addTask { [clock] in
                try? await clock.sleep(for: timeout, tolerance: nil)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// SIGTERM now and SIGKILL after `grace` unless it has ended, without holding up the caller.
    func stopLater(_ runner: any Runner, grace: Duration) {
        runner.signalGroup(SIGTERM)
        detach {
            if await !self.ended(runner, within: grace) { runner.signalGroup(SIGKILL) }
        }
    }

    /// SIGTERM to every runner, then SIGKILL to each still running after `grace`.
    func stopAll(_ runners: [any Runner], grace: Duration) async {
        for runner in runners { runner.signalGroup(SIGTERM) }
        await withDiscardingTaskGroup { group in
            for runner in runners {
                group.addTask {
                    if await !self.ended(runner, within: grace) { runner.signalGroup(SIGKILL) }
                }
            }
        }
    }
}
