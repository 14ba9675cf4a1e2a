import Foundation
import Testing

/// Every relative link in README.md and docs/ leads somewhere: a file or folder that exists,
/// and, with a `#fragment`, a heading of that page.
@Suite("Links in the manual")
struct LinkTests {
    @Test("every relative link resolves to a file and, with #anchor, to a heading in it", arguments: Repository.markdownPages)
    func linksResolve(page: String) throws {
        let text = try Repository.read(page)
        let links = Markdown.links(in: text)
        var broken: [String] = []
        for link in links where !link.contains("://") && !link.hasPrefix("mailto:") {
            let parts = link.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let file = parts[0]
            let fragment = parts.count > 1 ? parts[1] : nil
            let folder = (page as NSString).deletingLastPathComponent
            let target = file.isEmpty ? page : ((folder.isEmpty ? file : folder + "/" + file) as NSString).standardizingPath
            guard FileManager.default.fileExists(atPath: Repository.root + "/" + target) else {
                broken.append("\(link): no file \(target)")
                continue
            }
            if let fragment, target.hasSuffix(".md") {
                let anchors = Markdown.anchors(in: try Repository.read(target))
                if !anchors.contains(fragment) { broken.append("\(link): no heading #\(fragment) in \(target)") }
            }
        }
        #expect(broken.isEmpty, "\(page): \(broken.joined(separator: "\n"))")
    }

    @Test("the checker finds links and anchors as GitHub makes them")
    func checkerSeesWhatGitHubSees() {
        let text =
            "# Backup and restore\n## `[daemon]`\n```\n# not a heading\n[not](a-link.md)\n```\nSee [ops](operating.md#backup-and-restore) and [x](#daemon).\n"
        #expect(Markdown.links(in: text) == ["operating.md#backup-and-restore", "#daemon"])
        #expect(Markdown.anchors(in: text) == ["backup-and-restore", "daemon"])
    }
}

/// Just enough Markdown to find inline links and heading anchors outside code blocks.
enum Markdown {
    /// Lines outside fenced code blocks, with inline code spans removed.
    static func prose(_ text: String) -> [String] {
        var inFence = false
        var lines: [String] = []
        for line in text.components(separatedBy: "\n") {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                inFence.toggle()
                continue
            }
            if !inFence { lines.append(line) }
        }
        return lines
    }

    static func links(in text: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: #"\]\(([^)\s]+)\)"#)
        return prose(text).flatMap { line -> [String] in
            let stripped = line.replacingOccurrences(of: #"`[^`]*`"#, with: "", options: .regularExpression)
            let range = NSRange(stripped.startIndex..., in: stripped)
            return pattern.matches(in: stripped, range: range).compactMap { Range($0.range(at: 1), in: stripped).map { String(stripped[$0]) } }
        }
    }

    /// GitHub's heading anchors: lowercased, punctuation but `-` and `_` dropped, spaces made
    /// `-`, and `-1`, `-2` … after repeats.
    static func anchors(in text: String) -> [String] {
        var seen: [String: Int] = [:]
        var anchors: [String] = []
        for line in prose(text) where line.hasPrefix("#") {
            let title = line.drop(while: { $0 == "#" }).trimmingCharacters(in: .whitespaces)
            var slug = ""
            for character in title.lowercased() {
                if character.isLetter || character.isNumber || character == "-" || character == "_" {
                    slug.append(character)
                } else if character == " " {
                    slug.append("-")
                }
            }
            let count = seen[slug, default: 0]
            seen[slug] = count + 1
            anchors.append(count == 0 ? slug : "\(slug)-\(count)")
        }
        return anchors
    }
}
