import BerthNGram

/// Texts with structure a trigram model can learn: sentences from a small grammar, the same
/// for a given seed.
enum Corpus {
    static let subjects = ["the ship", "the crew", "a pilot", "the captain", "an old tug", "the harbour master"]
    static let verbs = ["loads", "unloads", "checks", "reserves", "leaves", "watches"]
    static let objects = ["the cargo", "a berth", "the quay", "the calendar", "the morning tide", "the channel"]
    static let endings = [".", " before dawn.", " again.", ", then it rests.", " for the second time."]

    static func sentences(_ count: Int, seed: UInt64) -> [String] {
        var random = SplitMix64(seed: seed)
        func pick(_ list: [String]) -> String { list[Int(random.next() % UInt64(list.count))] }
        return (0..<count).map { _ in "\(pick(subjects)) \(pick(verbs)) \(pick(objects))\(pick(endings))" }
    }
}
