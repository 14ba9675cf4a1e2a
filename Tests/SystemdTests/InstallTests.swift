import BerthTestSupport
import Foundation
import Testing

/// `make install` into a staging root (DESTDIR), with the binaries of this build (BIN_DIR) so
/// no release build is needed, and the units checked by `systemd-analyze verify`.
@Suite(.serialized) struct InstallTests {
    static func make(_ target: String, destdir: String, _ variables: [String] = []) throws -> CommandResult {
        try Products.run(
            "/usr/bin/make",
            ["-s", "-C", Repository.root, target, "DESTDIR=\(destdir)", "BIN_DIR=\(Products.directory)"] + variables,
            timeout: 300
        )
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
    }

    @Test func makeInstallLaysOutTheExpectedTree() throws {
        let root = try TemporaryDirectory(prefix: "berth-install")
        defer { root.remove() }
        let result = try Self.make("install", destdir: root.path)
        #expect(result.status == 0, "\(result)")

        let expected = [
            "usr/local/bin/berthd", "usr/local/bin/berth",
            "etc/berth/berthd.toml",
            "usr/local/lib/systemd/system/berthd.service", "usr/local/lib/systemd/system/berthd.socket",
            "usr/local/lib/sysusers.d/berth.conf", "usr/local/lib/tmpfiles.d/berth.conf",
            "usr/local/share/doc/berth/README.md", "usr/local/share/doc/berth/berthd.toml.example",
            "usr/local/share/doc/berth/docs/operating.md", "usr/local/share/doc/berth/docs/grafana/berth.json",
            "usr/local/share/man/man1/berth.1", "usr/local/share/man/man8/berthd.8",
            "usr/local/share/bash-completion/completions/berth", "usr/local/share/zsh/site-functions/_berth",
            "usr/local/share/fish/vendor_completions.d/berth.fish", "usr/local/share/bash-completion/completions/berthd",
        ]
        for file in expected {
            #expect(FileManager.default.fileExists(atPath: root.file(file)), "missing \(file)")
        }
        #expect(Self.mode(root.file("usr/local/bin/berthd")) == 0o755)
        #expect(Self.mode(root.file("usr/local/lib/systemd/system/berthd.service")) == 0o644)
        // The reference runner goes with them whenever it was built.
        if FileManager.default.isExecutableFile(atPath: Products.path("berth-runner")) {
            #expect(FileManager.default.isExecutableFile(atPath: root.file("usr/local/bin/berth-runner")))
        }
        #expect(Self.read(root.file("etc/berth/berthd.toml")) == Self.read(Repository.root + "/config/berthd.toml"))
        let service = Self.read(root.file("usr/local/lib/systemd/system/berthd.service"))
        #expect(service.contains("\nExecStart=/usr/local/bin/berthd --config /etc/berth/berthd.toml\n"))
        #expect(Self.read(root.file("usr/local/lib/systemd/system/berthd.socket")).contains("\nListenStream=/run/berth/berthd.sock\n"))

        // The installed berthd checks the installed config.
        let check = try Products.run(root.file("usr/local/bin/berthd"), ["check-config", "--config", root.file("etc/berth/berthd.toml")])
        #expect(check.status == 0, "\(check)")

        // Uninstall takes back what install put there, and keeps the config.
        let removed = try Self.make("uninstall", destdir: root.path)
        #expect(removed.status == 0, "\(removed)")
        for file in expected where !file.hasPrefix("etc/") {
            #expect(!FileManager.default.fileExists(atPath: root.file(file)), "\(file) is still there")
        }
        #expect(FileManager.default.fileExists(atPath: root.file("etc/berth/berthd.toml")))
    }

    @Test func theInstalledUnitsPassSystemdAnalyzeVerify() throws {
        let root = try TemporaryDirectory(prefix: "berth-install")
        defer { root.remove() }
        let result = try Self.make("install", destdir: root.path)
        #expect(result.status == 0, "\(result)")

        // verify insists that ExecStart's program exists; with DESTDIR it is under the staging
        // root, so check copies whose paths point there, otherwise the installed files as they are.
        let copies = try TemporaryDirectory(prefix: "berth-verify")
        defer { copies.remove() }
        for unit in ["berthd.service", "berthd.socket"] {
            let installed = Self.read(root.file("usr/local/lib/systemd/system/\(unit)"))
            #expect(!installed.isEmpty)
            try installed.replacingOccurrences(of: "=/usr/local/bin/", with: "=\(root.path)/usr/local/bin/")
                .write(toFile: copies.file(unit), atomically: true, encoding: .utf8)
        }
        let verify = try Products.run("/usr/bin/systemd-analyze", ["verify", copies.file("berthd.service"), copies.file("berthd.socket")])
        #expect(verify.status == 0, "\(verify)")
        // No unknown settings, no warnings of any kind.
        #expect(verify.stderr.isEmpty && verify.stdout.isEmpty, "\(verify)")

        // The sysusers.d entry makes user and group berth; tmpfiles.d then makes the folders,
        // both inside a scratch root (nothing on this machine changes).
        let scratch = try TemporaryDirectory(prefix: "berth-sysroot")
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.file("etc"), withIntermediateDirectories: true)
        let sysusers = try Products.run("/usr/bin/systemd-sysusers", ["--root=\(scratch.path)", root.file("usr/local/lib/sysusers.d/berth.conf")])
        #expect(sysusers.status == 0, "\(sysusers)")
        #expect(Self.read(scratch.file("etc/passwd")).contains("berth:x:"))
        #expect(Self.read(scratch.file("etc/group")).contains("berth:x:"))
        let tmpfiles = try Products.run(
            "/usr/bin/systemd-tmpfiles",
            ["--root=\(scratch.path)", "--create", root.file("usr/local/lib/tmpfiles.d/berth.conf")]
        )
        #expect(tmpfiles.status == 0, "\(tmpfiles)")
        for folder in ["run/berth", "var/lib/berth", "var/log/berth"] {
            #expect(FileManager.default.fileExists(atPath: scratch.file(folder)), "no \(folder)")
        }
    }

    @Test func anExistingConfigIsNeverOverwritten() throws {
        let root = try TemporaryDirectory(prefix: "berth-install")
        defer { root.remove() }
        try FileManager.default.createDirectory(atPath: root.file("etc/berth"), withIntermediateDirectories: true)
        try "# mine\n".write(toFile: root.file("etc/berth/berthd.toml"), atomically: true, encoding: .utf8)
        let result = try Self.make("install", destdir: root.path)
        #expect(result.status == 0, "\(result)")
        #expect(Self.read(root.file("etc/berth/berthd.toml")) == "# mine\n")
        #expect(result.stdout.contains("kept the existing"))
    }

    @Test func thePrefixReachesTheBinariesAndTheUnits() throws {
        let root = try TemporaryDirectory(prefix: "berth-install")
        defer { root.remove() }
        let result = try Self.make("install", destdir: root.path, ["PREFIX=/opt/berth", "UNITDIR=/etc/systemd/system"])
        #expect(result.status == 0, "\(result)")
        #expect(FileManager.default.isExecutableFile(atPath: root.file("opt/berth/bin/berthd")))
        let service = Self.read(root.file("etc/systemd/system/berthd.service"))
        #expect(service.contains("\nExecStart=/opt/berth/bin/berthd --config /etc/berth/berthd.toml\n"))
        #expect(service.contains("\nEnvironment=PATH=/opt/berth/bin:/usr/local/bin:"))
        #expect(service.contains("Documentation=file:/opt/berth/share/doc/berth/README.md"))
        #expect(FileManager.default.fileExists(atPath: root.file("opt/berth/lib/sysusers.d/berth.conf")))
    }
}
