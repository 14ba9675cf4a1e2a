import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SIGHUP (`systemctl reload berthd`) reloads units and models from the config file.
@Suite(.serialized) struct ReloadTests {
    static func unitIDs(_ daemon: LaunchedDaemon) throws -> [String] {
        let result = try daemon.files.cli(["units", "--json"])
        guard result.status == 0,
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
            let units = object["units"] as? [[String: Any]]
        else {
            throw LaunchFailure(log: "berth units failed: \(result)")
        }
        return units.compactMap { $0["id"] as? String }
    }

    static func holders(_ daemon: LaunchedDaemon) throws -> [String: String] {
        let result = try daemon.files.cli(["units", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let units = object?["units"] as? [[String: Any]] ?? []
        return Dictionary(
            units.compactMap { unit in (unit["holder"] as? String).map { (unit["id"] as! String, $0) } },
            uniquingKeysWith: { a, _ in a }
        )
    }

    /// Sends SIGHUP and waits for the reload's log line.
    static func reload(_ daemon: LaunchedDaemon, expecting line: String) throws {
        let before = daemon.log.components(separatedBy: line).count
        daemon.signal(SIGHUP)
        if eventually(timeout: 15, every: 0.02, { daemon.log.components(separatedBy: line).count > before }) { return }
        throw LaunchFailure(log: "no '\(line)' after SIGHUP:\n\(daemon.log)")
    }

    @Test func sighupWithAnAddedUnitMakesItAppearInBerthUnits() throws {
        let daemon = try LaunchedDaemon()
        try daemon.start()
        try daemon.waitUntilAnswering()
        #expect(try Self.unitIDs(daemon).contains("cpu-8") == false)

        try TemporaryDaemon.config(dedicated: 9).write(toFile: daemon.files.configPath, atomically: true, encoding: .utf8)
        try Self.reload(daemon, expecting: "config reloaded")
        #expect(try Self.unitIDs(daemon).contains("cpu-8"))
        // And the new unit is reservable: all 9 at once fit.
        let reserved = try daemon.files.cli(["reserve", "all", "--model", "amazon.nova-micro-v1:0", "--units", "9"])
        #expect(reserved.status == 0, "\(reserved)")
        #expect(daemon.isRunning)
        #expect(daemon.stop() == 0)
    }

    @Test func sighupWithABrokenConfigKeepsTheDaemonOnTheOldOne() throws {
        let daemon = try LaunchedDaemon()
        try daemon.start()
        try daemon.waitUntilAnswering()
        let before = try Self.unitIDs(daemon)

        try "[[units]]\nid = \"cpu-9\"\nkind = \"cpu\"\npool = \"dedicted\"\n".write(
            toFile: daemon.files.configPath,
            atomically: true,
            encoding: .utf8
        )
        try Self.reload(daemon, expecting: "config reload refused")
        #expect(daemon.log.contains("units[0].pool"), "the log names the problem's key path")
        #expect(daemon.isRunning)
        #expect(try Self.unitIDs(daemon) == before)
        #expect(try daemon.files.cli(["status"]).status == 0)

        // Fixed, it reloads.
        try TemporaryDaemon.config(dedicated: 9).write(toFile: daemon.files.configPath, atomically: true, encoding: .utf8)
        try Self.reload(daemon, expecting: "config reloaded")
        #expect(try Self.unitIDs(daemon).contains("cpu-8"))
        #expect(daemon.stop() == 0)
    }

    @Test func sighupWithAConfigThatDropsALeasedUnitKeepsIt() throws {
        let daemon = try LaunchedDaemon()
        try daemon.start()
        try daemon.waitUntilAnswering()
        let reserved = try daemon.files.cli(["reserve", "held", "--model", "amazon.nova-micro-v1:0", "--units", "1"])
        #expect(reserved.status == 0, "\(reserved)")
        #expect(try Self.holders(daemon) == ["cpu-0": "held"])

        // The new config renames cpu-0 (leased) to cpu-8, and drops cpu-7 (free).
        let config = TemporaryDaemon.config(dedicated: 8)
            .replacingOccurrences(of: "id = \"cpu-0\"", with: "id = \"cpu-8\"")
            .replacingOccurrences(of: "[[units]]\nid = \"cpu-7\"\nkind = \"cpu\"\ndevice = 7\npool = \"dedicated\"\n", with: "")
        try config.write(toFile: daemon.files.configPath, atomically: true, encoding: .utf8)
        try Self.reload(daemon, expecting: "config reloaded")

        let units = try Self.unitIDs(daemon)
        #expect(units.contains("cpu-0"), "the leased unit stays")
        #expect(units.contains("cpu-8"))
        #expect(!units.contains("cpu-7"), "a free unit the config drops goes")
        #expect(try Self.holders(daemon) == ["cpu-0": "held"])
        #expect(daemon.log.contains("unit kept although the config drops it"))

        // Once released, the next reload lets it go.
        #expect(try daemon.files.cli(["release", "held"]).status == 0)
        try Self.reload(daemon, expecting: "units_removed=cpu-0")
        #expect(try Self.unitIDs(daemon).contains("cpu-0") == false)
        #expect(daemon.stop() == 0)
    }

    @Test func manyHangupsInARowNeverKillTheDaemon() throws {
        let daemon = try LaunchedDaemon()
        try daemon.start()
        try daemon.waitUntilAnswering()
        for _ in 0..<20 { daemon.signal(SIGHUP) }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(daemon.isRunning, "log:\n\(daemon.log)")
        #expect(try daemon.files.cli(["status"]).status == 0)
        #expect(daemon.stop() == 0)
    }
}
