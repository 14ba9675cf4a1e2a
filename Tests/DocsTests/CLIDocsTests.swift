import BerthTestSupport
import Foundation
import Testing

/// docs/cli.md and the man pages are generated from the CLIs' own help by scripts/gen-docs.py;
/// the page in the repository must be what the generator makes from the binaries just built.
@Suite("CLI reference")
struct CLIDocsTests {
    @Test("docs/cli.md is what the built berth and berthd say of themselves (make docs regenerates it)")
    func cliPageIsCurrent() throws {
        let generated = try Products.run(
            "/usr/bin/env",
            ["python3", Repository.root + "/scripts/gen-docs.py", "cli", "--bin", Products.directory]
        )
        try #require(generated.status == 0, "scripts/gen-docs.py failed: \(generated)")
        let page = try Repository.read("docs/cli.md")
        #expect(generated.stdout.contains("## berth reserve"), "the generator lists no subcommand: \(generated.stdout.prefix(400))")
        #expect(page == generated.stdout, "docs/cli.md is stale: run `make docs` and commit the result")
    }

    @Test("the man pages render, with every subcommand in them")
    func manPages() throws {
        let out = try TemporaryDirectory(prefix: "berth-man")
        defer { out.remove() }
        let generated = try Products.run(
            "/usr/bin/env",
            ["python3", Repository.root + "/scripts/gen-docs.py", "man", "--bin", Products.directory, "--out", out.path]
        )
        try #require(generated.status == 0, "\(generated)")
        let berth = try String(contentsOfFile: out.file("berth.1"), encoding: .utf8)
        let berthd = try String(contentsOfFile: out.file("berthd.8"), encoding: .utf8)
        #expect(berth.hasPrefix(".TH BERTH 1"))
        #expect(berthd.hasPrefix(".TH BERTHD 8"))
        for sub in ["reserve", "submit", "invoke", "usage", "release"] { #expect(berth.contains(".SS \"berth \(sub)"), "berth.1 lacks \(sub)") }
        for sub in ["check-config", "backup"] { #expect(berthd.contains(".SS \"berthd \(sub)"), "berthd.8 lacks \(sub)") }
    }
}
