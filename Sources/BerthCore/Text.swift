#if canImport(Glibc)
import Glibc
#endif

// BerthCore, BerthWire, BerthClient and the CLI use FoundationEssentials, not Foundation: the
// whole of Foundation (and ICU's calendars and locales) would come into the `berth` binary with
// its protocol conformances, and the runtime walks every conformance record at each first
// lookup, which is most of what a CLI call spends. These few text functions are what those
// modules took from Foundation.

extension Character {
    /// A space or a tab, not a line break: Foundation's `CharacterSet.whitespaces`.
    public var isBlank: Bool { isWhitespace && !isNewline }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (Foundation's `.whitespaces`).
    public func trimmingBlanks() -> String {
        trimming(\.isBlank)
    }

    /// Without leading and trailing whitespace, line breaks included.
    public func trimmingWhitespace() -> String {
        trimming(\.isWhitespace)
    }

    /// Without the leading and trailing characters that `drop` accepts.
    public func trimming(_ drop: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// printf's formatting of numbers (`%.3f`, `%04ld`), through the C library's `vsnprintf`.
public enum CFormat {
    public static func string(_ format: String, _ arguments: any CVarArg...) -> String {
        // The first call says how long the text is; a longer one is written again to fit.
        var buffer = [CChar](repeating: 0, count: 64)
        let length = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
        guard length >= 0 else { return "" }
        if length >= buffer.count {
            buffer = [CChar](repeating: 0, count: length + 1)
            _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A key known by its name alone: for objects whose keys are chosen at run time (a listing's
/// item key, a request's fields as the client wrote them).
public struct NamedKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ name: String) { stringValue = name }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}
