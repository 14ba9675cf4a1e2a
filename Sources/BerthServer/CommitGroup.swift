import BerthCore
import BerthStore
import BerthWire
import Foundation
import Synchronization

/// A change a request makes: its status, and how to show the result once the scheduler has run.
struct Change: Sendable {
    var status: Int
    /// Reads what the answer shows, in the batch's transaction after the scheduling cycle.
    var view: @Sendable (LedgerTransaction) throws -> any Encodable & Sendable

    init<View: Encodable & Sendable>(status: Int, view: @escaping @Sendable (LedgerTransaction) throws -> View) {
        self.status = status
        self.view = { tx in try view(tx) }
    }
}

/// An answer of a committed batch: its bytes, or the view to encode them from. Encoding
/// happens on the request's own task after the commit, not on the writer, which every change
/// waits for; only an answer stored with its Idempotency-Key is encoded in the transaction.
enum BatchAnswer: Sendable {
    case stored(IdempotentAnswer)
    case view(status: Int, any Encodable & Sendable)

    func encoded() throws -> (status: Int, body: Data) {
        switch self {
        case .stored(let answer): (answer.status, answer.response)
        case .view(let status, let view): (status, try Wire.encode(view))
        }
    }
}

/// Group commit for the control socket's POSTs: changes that arrive while a transaction is
/// being written wait for the next one, which carries all of them. Each change runs in its own
/// savepoint (a refused one undoes only itself), then one scheduling cycle runs for the
/// batch, then each answer is rendered and stored with its Idempotency-Key, and the batch
/// commits: one fsync for a burst instead of one per request. Nobody is answered before the
/// commit, so every acknowledged change is durable.
final class CommitGroup: Sendable {
    struct Request: Sendable {
        var owner: String
        var key: String?
        var route: String
        var body: Data
        var perform: @Sendable (LedgerTransaction) throws -> Change
    }

    private let batches: GroupCommit<Request, BatchAnswer>

    /// `afterBatch` is told once per committed batch, with what its scheduling cycle did and
    /// whether that started, grew or ended an inference reservation: the services that follow
    /// the ledger look again once per batch, not once per request, and only if it concerns them.
    init(ledger: Ledger, clock: @escaping @Sendable () -> Date, afterBatch: @escaping @Sendable (_ plan: Plan, _ changesServes: Bool) -> Void) {
        batches = GroupCommit(exclusiveKey: { request in request.key.map { "\(request.owner)\u{0}\($0)" } }) { batch, _ in
            await Self.write(batch, ledger: ledger, clock: clock, afterBatch: afterBatch)
        }
    }

    /// Performs the change in the next batch; returns its answer once the batch is committed.
    func commit(
        owner: String,
        key: String?,
        route: String,
        body: Data,
        perform: @escaping @Sendable (LedgerTransaction) throws -> Change
    ) async throws -> BatchAnswer {
        try await batches.submit(Request(owner: owner, key: key, route: route, body: body, perform: perform))
    }

    private static func write(
        _ batch: [Request],
        ledger: Ledger,
        clock: @escaping @Sendable () -> Date,
        afterBatch: @Sendable (_ plan: Plan, _ changesServes: Bool) -> Void
    ) async -> [Result<BatchAnswer, any Error>] {
        enum Outcome: Sendable {
            case stored(IdempotentAnswer)
            case made(Change)
            case refused(any Error)
        }
        do {
            let (cycle, results) = try await ledger.write { tx -> ((plan: Plan, changesServes: Bool), [Result<BatchAnswer, any Error>]) in
                // Read once the writer is ours: never earlier than a change its requests made
                // with the time they read (a reservation that starts now is due in this cycle).
                let now = clock()
                // 1. Each change in its savepoint.
                let outcomes: [Outcome] = batch.map { request in
                    do {
                        return try tx.savepoint {
                            if let key = request.key, let first = try tx.idempotentAnswer(owner: request.owner, key: key) {
                                guard first.route == request.route, first.request == request.body else {
                                    throw APIError(
                                        .idempotencyKeyReused,
                                        "Idempotency-Key '\(key)' was already used for a different request; use a new key for a new request"
                                    )
                                }
                                return .stored(first)
                            }
                            return .made(try request.perform(tx))
                        }
                    } catch {
                        return .refused(ledger.recognizingFullDisk(error))
                    }
                }
                // 2. One scheduling cycle for all of them, so answers show leases and started jobs.
                let cycle = try Scheduler.cycleNotingServes(tx, now: now)
                // 3. The answers, stored with their keys in the same transaction.
                return (
                    cycle,
                    try zip(batch, outcomes).map { request, outcome in
                        switch outcome {
                        case .stored(let answer):
                            return .success(.stored(answer))
                        case .refused(let error):
                            return .failure(error)
                        case .made(let change):
                            let view = try change.view(tx)
                            guard let key = request.key else { return .success(.view(status: change.status, view)) }
                            let answer = IdempotentAnswer(
                                route: request.route,
                                request: request.body,
                                status: change.status,
                                response: try Wire.encode(view)
                            )
                            try tx.recordIdempotentAnswer(owner: request.owner, key: key, answer: answer, now: now)
                            return .success(.stored(answer))
                        }
                    }
                )
            }
            afterBatch(cycle.plan, cycle.changesServes)
            return results
        } catch {
            // Nothing of the batch was committed: every request gets the error, none acted.
            return batch.map { _ in .failure(error) }
        }
    }
}
