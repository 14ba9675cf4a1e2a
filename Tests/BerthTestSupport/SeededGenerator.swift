import BerthNGram

/// SplitMix64 (the n-gram model's generator), for tests that draw at random: the same seed
/// gives the same sequence everywhere, so a failing seed can be replayed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var generator: SplitMix64

    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    public init(state: UInt64) { self.init(seed: state) }

    public mutating func next() -> UInt64 { generator.next() }

    /// True with the given probability.
    public mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }
}
