/// Splits text into word-level tokens and joins tokens back into text.
///
/// A word is a run of letters and digits, with apostrophes kept inside it (`don't`); every other
/// character that is not white space (punctuation, symbols) is a token of its own. White space
/// only separates tokens.
public struct Tokenizer: Sendable, Codable, Equatable {
    /// Whether words are lowercased, so `The` and `the` are one word.
    public var lowercase: Bool

    public init(lowercase: Bool = true) {
        self.lowercase = lowercase
    }

    public func tokens(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var tokens: [String] = []
        var word = String.UnicodeScalarView()
        func endWord() {
            guard !word.isEmpty else { return }
            let text = String(word)
            tokens.append(lowercase ? text.lowercased() : text)
            word = String.UnicodeScalarView()
        }
        for (i, scalar) in scalars.enumerated() {
            if Self.isWordScalar(scalar) {
                word.append(scalar)
            } else if Self.isApostrophe(scalar), !word.isEmpty, i + 1 < scalars.count, Self.isWordScalar(scalars[i + 1]) {
                word.append(scalar)
            } else {
                endWord()
                if !scalar.properties.isWhitespace && scalar.value >= 0x20 {
                    tokens.append(String(Character(scalar)))
                }
            }
        }
        endWord()
        return tokens
    }

    /// Joins tokens with single spaces, except before closing punctuation and after opening
    /// brackets: `["hello", ",", "world", "!"]` → `hello, world!`.
    public static func join(_ tokens: [String]) -> String {
        var text = ""
        var previous: String?
        for token in tokens {
            if let previous, !attachesToPrevious(token), !opensGroup(previous) {
                text += " "
            }
            text += token
            previous = token
        }
        return text
    }

    /// Whether `token` is written with no space before it (`,` `.` `)` …).
    public static func attachesToPrevious(_ token: String) -> Bool {
        [".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "…"].contains(token)
    }

    static func opensGroup(_ token: String) -> Bool {
        ["(", "[", "{"].contains(token)
    }

    static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            let v = scalar.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        let properties = scalar.properties
        return properties.isAlphabetic || properties.numericType != nil || properties.generalCategory == .nonspacingMark
    }

    static func isApostrophe(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "'" || scalar == "\u{2019}"
    }
}
