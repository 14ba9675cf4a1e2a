import BerthStore
import BerthTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import BerthServer

private let t = Fixtures.t

/// What berthd does to its ledger in the background: checkpoints and call roll-ups, only when
/// something was committed for them to do.
@Suite("Ledger upkeep")
struct LedgerUpkeepTests {
    @Test("the checkpointer copies the log after changes are committed, again while part of it is held back, and not while nothing changes")
    func checkpointsOnlyAfterChanges() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let checkpoints = Mutex(0)
        // Frames the next checkpoint reports as not copied, as when a reader holds them back.
        let heldBack = Mutex(0)
        let checkpointer = LedgerCheckpointer(ledger: ledger, logger: Logger(label: "test"), every: .seconds(1)) {
            checkpoints.withLock { $0 += 1 }
            let result = try await ledger.checkpoint()
            let held = heldBack.withLock { held in
                defer { held = 0 }
                return held
            }
            return (result.logFrames, result.copied - held)
        }
        func checkpointsSoFar() -> Int { checkpoints.withLock { $0 } }

        // The first pass copies what the ledger had when berthd started; then nothing changes.
        var copiedThrough = try await checkpointer.pass(after: nil)
        copiedThrough = try await checkpointer.pass(after: copiedThrough)
        #expect(checkpointsSoFar() == 1)

        _ = try await ledger.write { try $0.insert(Fixtures.reservation(0, units: 1, start: t(0), end: t(1))) }
        copiedThrough = try await checkpointer.pass(after: copiedThrough)
        copiedThrough = try await checkpointer.pass(after: copiedThrough)
        #expect(checkpointsSoFar() == 2)

        // A pass that could not copy the whole log is followed by another, with no new change.
        heldBack.withLock { $0 = 1 }
        _ = try await ledger.write { try $0.insert(Fixtures.reservation(1, units: 1, start: t(0), end: t(1))) }
        for _ in 0..<3 { copiedThrough = try await checkpointer.pass(after: copiedThrough) }
        #expect(checkpointsSoFar() == 4)
    }

    @Test("the meter rolls calls up into the hourly rows once they are recorded, and again after a pass with none")
    func meterRollsUpRecordedCalls() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let meter = InvocationMeter(ledger: ledger, logger: Logger(label: "test"), metrics: DaemonMetrics())
        let call = Fixtures.onDemandCall(at: t(1))
        for _ in 0..<2 {
            try await meter.record(call)
            #expect(try ledger.readNow { try $0.callsToRollUp() })
            await meter.rollUp()
            #expect(try !ledger.readNow { try $0.callsToRollUp() })
            // A pass with nothing recorded since.
            await meter.rollUp()
        }
        #expect(try ledger.readNow { try $0.invocationCounts(reservationID: nil) }.served == 2)
    }
}
