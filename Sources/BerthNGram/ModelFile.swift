public import Foundation

/// Why a model folder could not be read or written.
public struct ModelFileError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// `model.json`: everything the model knows, in a stable order so that the same training run
/// writes the same bytes. Counts are flat integer lists (`[v, w, count, …]`, sorted by ids);
/// the context totals are sums of them and are rebuilt on load.
struct ModelFile: Codable {
    static let formatName = "berth-ngram"
    static let currentVersion = 1

    var format: String
    var version: Int
    var order: Int
    var lowercase: Bool
    /// Words by id; the first three are `<s>`, `</s>` and `<unk>`.
    var vocabulary: [String]
    /// `c(w)` by id.
    var unigrams: [Int]
    /// `[v, w, c(v w), …]`.
    var bigrams: [Int]
    /// `[u, v, w, c(u v w), …]`.
    var trigrams: [Int]
    /// The interpolation weights, level-major (see `InterpolationWeights`).
    var interpolation: [Double]
}

extension NGramModel {
    public static let fileName = "model.json"

    /// The model as `model.json` bytes.
    public func encoded() throws -> Data {
        var bigramList: [Int] = []
        bigramList.reserveCapacity(bigrams.count * 3)
        for key in bigrams.keys.sorted() where bigrams[key]! > 0 {
            bigramList += [Int(key >> 21), Int(key & 0x1F_FFFF), bigrams[key]!]
        }
        var trigramList: [Int] = []
        trigramList.reserveCapacity(trigrams.count * 4)
        for key in trigrams.keys.sorted() where trigrams[key]! > 0 {
            trigramList += [Int(key >> 42), Int((key >> 21) & 0x1F_FFFF), Int(key & 0x1F_FFFF), trigrams[key]!]
        }
        let file = ModelFile(
            format: ModelFile.formatName,
            version: ModelFile.currentVersion,
            order: Self.order,
            lowercase: tokenizer.lowercase,
            vocabulary: vocabulary.words,
            unigrams: unigrams,
            bigrams: bigramList,
            trigrams: trigramList,
            interpolation: weights.values
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(file)
    }

    /// Reads `model.json` bytes, checking every id and count.
    public init(encoded data: Data) throws {
        let file: ModelFile
        do {
            file = try JSONDecoder().decode(ModelFile.self, from: data)
        } catch {
            throw ModelFileError(description: "not a berth n-gram model file: \(error)")
        }
        guard file.format == ModelFile.formatName, file.version == ModelFile.currentVersion, file.order == Self.order else {
            throw ModelFileError(
                description:
                    "unsupported model format \(file.format) version \(file.version) order \(file.order); expected \(ModelFile.formatName) version \(ModelFile.currentVersion) order \(Self.order)"
            )
        }
        guard let vocabulary = Vocabulary(words: file.vocabulary) else {
            throw ModelFileError(
                description: "the vocabulary must start with <s>, </s>, <unk>, hold at most \(Vocabulary.capacity) words and repeat none"
            )
        }
        guard let weights = InterpolationWeights(values: file.interpolation) else {
            throw ModelFileError(
                description:
                    "interpolation must hold \(InterpolationWeights.levels * InterpolationWeights.buckets) weights within \(InterpolationWeights.bounds)"
            )
        }
        let size = vocabulary.count
        guard file.unigrams.count == size, file.unigrams.allSatisfy({ $0 >= 0 }),
            file.bigrams.count % 3 == 0, file.trigrams.count % 4 == 0
        else {
            throw ModelFileError(description: "count lists do not match the vocabulary of \(size) words")
        }
        func isID(_ id: Int) -> Bool { id >= 0 && id < size }

        var model = NGramModel(tokenizer: Tokenizer(lowercase: file.lowercase))
        model.vocabulary = vocabulary
        model.weights = weights
        model.unigrams = file.unigrams
        model.unigramTotal = file.unigrams.reduce(0, +)
        model.bigramContexts = [Int](repeating: 0, count: size)
        model.bigrams.reserveCapacity(file.bigrams.count / 3)
        for i in stride(from: 0, to: file.bigrams.count, by: 3) {
            let (v, w, c) = (file.bigrams[i], file.bigrams[i + 1], file.bigrams[i + 2])
            guard isID(v), isID(w), c > 0 else { throw ModelFileError(description: "bad bigram entry at \(i / 3)") }
            model.bigrams[Self.pairKey(v, w), default: 0] += c
            model.bigramContexts[v] += c
        }
        model.trigrams.reserveCapacity(file.trigrams.count / 4)
        for i in stride(from: 0, to: file.trigrams.count, by: 4) {
            let (u, v, w, c) = (file.trigrams[i], file.trigrams[i + 1], file.trigrams[i + 2], file.trigrams[i + 3])
            guard isID(u), isID(v), isID(w), c > 0 else { throw ModelFileError(description: "bad trigram entry at \(i / 4)") }
            model.trigrams[Self.tripleKey(u, v, w), default: 0] += c
            model.trigramContexts[Self.pairKey(u, v), default: 0] += c
        }
        self = model
    }

    /// Writes `model.json` into `directory`, creating it; the file is replaced atomically.
    public func save(to directory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try encoded().write(to: directory.appendingPathComponent(Self.fileName), options: .atomic)
        } catch let error as ModelFileError {
            throw error
        } catch {
            throw ModelFileError(description: "cannot write \(directory.appendingPathComponent(Self.fileName).path): \(error.localizedDescription)")
        }
    }

    /// Reads `directory/model.json`.
    public static func load(from directory: URL) throws -> NGramModel {
        let url = directory.appendingPathComponent(fileName)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ModelFileError(description: "cannot read \(url.path): \(error.localizedDescription)")
        }
        do {
            return try NGramModel(encoded: data)
        } catch let error as ModelFileError {
            throw ModelFileError(description: "\(url.path): \(error.description)")
        }
    }
}
