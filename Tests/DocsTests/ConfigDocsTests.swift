import BerthConfig
import Foundation
import Testing

/// docs/operating.md documents every key the config decoder accepts, and nothing it refuses.
@Suite("Config keys in the manual")
struct ConfigDocsTests {
    /// The reference's rows: `| \`daemon.socket\` | …`, in the section "Config keys".
    static func documentedKeys() throws -> [String] {
        let page = try Repository.read("docs/operating.md")
        guard let start = page.range(of: "\n## Config keys\n") else { return [] }
        let section = page[start.upperBound...].components(separatedBy: "\n## ").first ?? ""
        return section.components(separatedBy: "\n").compactMap { line in
            guard line.hasPrefix("| `") else { return nil }
            return line.dropFirst(3).split(separator: "`").first.map(String.init)
        }
    }

    @Test("every key the decoder accepts has a row in docs/operating.md")
    func everyKeyDocumented() throws {
        let documented = Set(try Self.documentedKeys())
        let missing = ConfigKeys.documentedPaths.filter { !documented.contains($0) }
        #expect(missing.isEmpty, "docs/operating.md, \"Config keys\", has no row for: \(missing.joined(separator: ", "))")
    }

    @Test("every key documented in docs/operating.md is one the decoder accepts")
    func noInventedKeys() throws {
        let documented = try Self.documentedKeys()
        #expect(documented.count >= ConfigKeys.documentedPaths.count)
        let accepted = Set(ConfigKeys.documentedPaths)
        let unknown = documented.filter { !accepted.contains($0) }
        #expect(unknown.isEmpty, "documented but refused by the decoder: \(unknown.joined(separator: ", "))")
    }
}
