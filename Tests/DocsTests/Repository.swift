import Foundation

/// The repository's files, found from this source file's place in it.
enum Repository {
    static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }

    static func read(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    /// README.md and every Markdown page under docs/, as paths relative to the root.
    static var markdownPages: [String] {
        let docs = (FileManager.default.enumerator(atPath: root + "/docs")?.allObjects as? [String]) ?? []
        return ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    }
}
