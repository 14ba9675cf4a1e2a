/// The words a model has seen, each with a small integer id. Ids 0–2 are the sentence markers
/// and the unknown word; the tokenizer never produces their spellings (it splits `<` off).
public struct Vocabulary: Sendable, Equatable {
    public static let sentenceStart = 0
    public static let sentenceEnd = 1
    public static let unknown = 2
    static let markers = ["<s>", "</s>", "<unk>"]

    /// At most this many ids, so three of them pack into one 64-bit key (21 bits each). It is
    /// also the size of the nominal word universe the model's uniform floor spreads over.
    public static let capacity = 1 << 20

    public private(set) var words: [String]
    private var ids: [String: Int]

    public init() {
        words = Self.markers
        ids = Dictionary(uniqueKeysWithValues: Self.markers.enumerated().map { ($1, $0) })
    }

    /// Rebuilds a vocabulary from its words in id order (as saved); `nil` if the markers are
    /// missing or a word repeats.
    init?(words: [String]) {
        guard words.count <= Self.capacity, Array(words.prefix(Self.markers.count)) == Self.markers else { return nil }
        var ids: [String: Int] = [:]
        ids.reserveCapacity(words.count)
        for (id, word) in words.enumerated() {
            guard ids.updateValue(id, forKey: word) == nil else { return nil }
        }
        self.words = words
        self.ids = ids
    }

    public var count: Int { words.count }

    public func id(of word: String) -> Int? { ids[word] }

    /// The id of `word`, adding it if new; the unknown word's id once the vocabulary is full.
    mutating func intern(_ word: String) -> Int {
        if let id = ids[word] { return id }
        guard words.count < Self.capacity else { return Self.unknown }
        let id = words.count
        words.append(word)
        ids[word] = id
        return id
    }
}
