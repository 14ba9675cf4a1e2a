import Synchronization

/// Group commit: items that arrive while a batch is being written wait for the next batch,
/// which carries all of them, so a burst costs one transaction instead of one each. Nobody
/// gets an answer before the batch holding their item is written.
///
/// There is no writer task: the first caller of a quiet moment writes the batch on its own
/// task, and when it is done hands the lead to the first caller still waiting, whose task writes
/// the next batch. Every write therefore runs inside a caller's structured task and ends with it.
final class GroupCommit<Item: Sendable, Answer: Sendable>: Sendable {
    /// Writes `items` in one transaction and returns one result per item, in order. `fresh` is
    /// true for the first batch after a quiet moment (a few items, worth writing without a hop).
    typealias Write = @Sendable (_ items: [Item], _ fresh: Bool) async -> [Result<Answer, any Error>]

    private enum Turn: Sendable {
        case answered(Result<Answer, any Error>)
        case lead
    }

    private struct Waiter: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Turn, Never>
    }

    private struct State: Sendable {
        var waiting: [Waiter] = []
        var writing = false
        var idle: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let write: Write
    /// Items with the same non-nil key never share a batch (a second request with an
    /// Idempotency-Key must see the first one's stored answer).
    private let exclusiveKey: @Sendable (Item) -> String?

    init(exclusiveKey: @escaping @Sendable (Item) -> String? = { _ in nil }, write: @escaping Write) {
        self.exclusiveKey = exclusiveKey
        self.write = write
    }

    /// Writes `item` in the next batch and returns its answer once that batch is written.
    func submit(_ item: Item) async throws -> Answer {
        let leads = state.withLock { state -> Bool in
            if state.writing { return false }
            state.writing = true
            return true
        }
        if leads { return try await lead(with: item, fresh: true) }
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let leadsNow = state.withLock { state -> Bool in
                // The writer finished between the two looks: this caller writes.
                if !state.writing {
                    state.writing = true
                    return true
                }
                state.waiting.append(Waiter(item: item, continuation: continuation))
                return false
            }
            if leadsNow { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .answered(let result): return try result.get()
        case .lead: return try await lead(with: item, fresh: false)
        }
    }

    /// Returns once no batch is being written.
    func idle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if !state.writing { return true }
                state.idle.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Writes a batch of `item` and what waits beside it, answers the others, then writes what
    /// piled up meanwhile, a few batches at most (each hand-over of the lead costs a wake-up of
    /// another task, which at a few clients is a fifth of the throughput), before it hands the
    /// lead on to the first caller left waiting, or ends the writing if none is.
    private func lead(with item: Item, fresh: Bool) async throws -> Answer {
        let batch = take(besides: item)
        let results = await write([item] + batch.map(\.item), fresh)
        for (waiter, result) in zip(batch, results.dropFirst()) { waiter.continuation.resume(returning: .answered(result)) }
        for _ in 0..<Self.batchesBeforeHandOver {
            let more = take(besides: nil)
            guard !more.isEmpty else { break }
            let answers = await write(more.map(\.item), false)
            for (waiter, result) in zip(more, answers) { waiter.continuation.resume(returning: .answered(result)) }
        }
        let (next, idle) = state.withLock { state -> (CheckedContinuation<Turn, Never>?, [CheckedContinuation<Void, Never>]) in
            guard state.waiting.isEmpty else { return (state.waiting.removeFirst().continuation, []) }
            state.writing = false
            defer { state.idle = [] }
            return (nil, state.idle)
        }
        next?.resume(returning: .lead)
        for continuation in idle { continuation.resume() }
        return try results[0].get()
    }

    /// How many batches of others a leader writes after its own: enough that hand-overs are
    /// rare under load, few enough that its own caller's answer is not held back for long.
    private static var batchesBeforeHandOver: Int { 3 }

    /// The waiters that go into the next batch (beside `item`, the leader's own, if given).
    private func take(besides item: Item?) -> [Waiter] {
        state.withLock { state -> [Waiter] in
            var keys = Set<String>()
            if let item, let key = exclusiveKey(item) { keys.insert(key) }
            var taken: [Waiter] = []
            var left: [Waiter] = []
            for waiter in state.waiting {
                if let key = exclusiveKey(waiter.item), !keys.insert(key).inserted {
                    left.append(waiter)
                } else {
                    taken.append(waiter)
                }
            }
            state.waiting = left
            return taken
        }
    }
}
