import BerthTestSupport
import BerthWire
import Foundation

/// `berth --json` output read as the wire types berthd sends, so a test reads the same fields,
/// with the same names and types, as the CLI and the server do.
extension TemporaryDaemon {
    struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }

    /// `berth --json ARGS` (as `user`), decoded into `type`.
    func view<View: Decodable>(_ type: View.Type, _ arguments: [String], as user: TestUser? = nil) throws -> View {
        // `--json` after the subcommand's name, where the subcommand's options go.
        let result = try cli(Array(arguments.prefix(1)) + ["--json"] + arguments.dropFirst(), as: user)
        guard result.status == 0 else { throw CommandFailed(description: "berth \(arguments) failed: \(result)") }
        return try Wire.decode(View.self, from: Data(result.stdout.utf8))
    }

    func reservation(_ name: String, as user: TestUser? = nil) throws -> ReservationView {
        try view(ReservationView.self, ["reservations", name], as: user)
    }

    func jobView(_ id: Int, as user: TestUser? = nil) throws -> JobView {
        try view(JobView.self, ["jobs", String(id)], as: user)
    }

    func units() throws -> [UnitView] {
        try view(UnitList.self, ["units"]).units
    }

    /// Job `id` once its status is one of `statuses`, as `job(_:reaching:)` waits for it; the
    /// object it returns is what `berth --json jobs ID` printed, read again as a `JobView`.
    func jobView(_ id: Int, reaching statuses: Set<String>, as user: TestUser? = nil, timeout: TimeInterval = 60) async throws -> JobView {
        let shown = try await job(id, reaching: statuses, as: user, timeout: timeout)
        return try Wire.decoder().decode(JobView.self, from: JSONSerialization.data(withJSONObject: shown))
    }
}
