import BerthCore
public import BerthStore
import Foundation
public import Logging
public import ServiceLifecycle

/// berthd's side of the conversation with systemd: `READY=1` once the socket is served,
/// `STATUS=` lines, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` when shutdown begins,
/// and `WATCHDOG=1` pings.
///
/// The pings come from a loop that, every period, runs a transaction on the ledger's writer
/// (reading the pool summary for `STATUS=`). Every change berthd makes goes through that one
/// serial writer, so if the writer is wedged (a transaction that never ends, a disk that never
/// answers) or the concurrency runtime is starved, the pings stop and systemd restarts berthd.
///
/// Outside systemd (no `NOTIFY_SOCKET`) every method does nothing and `run()` only waits for
/// shutdown. Put it last in the service group: the group stops services in reverse order, so
/// this one hears of the shutdown first and `STOPPING=1` goes out before the server stops.
public final class SystemdLink: Service, Sendable {
    private let notifier: SystemdNotifier?
    private let watchdogInterval: Duration?
    private let ledger: Ledger
    private let logger: Logger
    private let lastStatus = LockedStatus()
    /// Without a watchdog, `STATUS=` is refreshed this often.
    private let statusInterval: Duration

    public init(environment: [String: String], ledger: Ledger, logger: Logger, statusInterval: Duration = .seconds(10)) {
        self.notifier = SystemdNotifier(environment: environment)
        self.watchdogInterval = notifier == nil ? nil : SystemdWatchdog.pingInterval(environment: environment)
        self.ledger = ledger
        self.logger = logger
        self.statusInterval = statusInterval
        if let notifier {
            logger.debug(
                "systemd notifications on",
                metadata: [
                    "notify_socket": "\(notifier.socketPath)",
                    "watchdog_ping_interval": "\(watchdogInterval.map { "\($0)" } ?? "off")",
                ]
            )
        }
    }

    /// The socket answers and the ledger is reconciled: `READY=1` with the first status line.
    public func ready() async {
        guard let notifier else { return }
        let status = await currentStatus()
        notifier.send("READY=1\nSTATUS=\(status ?? "serving")")
        if let status { lastStatus.set(status) }
        logger.debug("told systemd: ready")
    }

    /// A reload begins (`RELOADING=1` with the monotonic time, as systemd 253+ asks).
    public func reloading() {
        notifier?.send("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())\nSTATUS=reloading the config")
    }

    /// A reload ended, applied or not: `READY=1` and a fresh status line.
    public func reloaded() async {
        await ready()
    }

    public func run() async throws {
        guard let notifier else {
            try? await gracefulShutdown()
            return
        }
        let period = watchdogInterval ?? statusInterval
        let pings = watchdogInterval != nil
        await withGracefulShutdownHandler {
            try? await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    // A write transaction: it waits behind every other change, so it proves the
                    // writer is moving. Reading the status there costs nothing extra.
                    if let status = await self.currentStatus(throughWriter: true) {
                        if pings { notifier.send("WATCHDOG=1") }
                        if self.lastStatus.replace(with: status) { notifier.send("STATUS=\(status)") }
                    }
                    try await Task.sleep(for: period)
                }
            }
        } onGracefulShutdown: {
            notifier.send("STOPPING=1\nSTATUS=stopping: finishing requests in flight")
        }
    }

    /// "serving: 3/8 dedicated units leased, 1 active and 2 pending reservations"; nil if the
    /// ledger cannot be read (then no ping either).
    private func currentStatus(throughWriter: Bool = false) async -> String? {
        let read: @Sendable (LedgerTransaction) throws -> String = { tx in
            let dedicated = Set(try tx.units().filter { $0.pool == .dedicated }.map(\.id))
            let leased = try tx.unitHolders().keys.filter { dedicated.contains($0) }.count
            let live = try tx.liveReservations()
            let active = live.filter { $0.status == .active }.count
            return "serving: \(leased)/\(dedicated.count) dedicated units leased, \(active) active and \(live.count - active) pending reservations"
        }
        do {
            return throughWriter ? try await ledger.write(read) : try await ledger.read(read)
        } catch {
            logger.error("cannot read the ledger for systemd's status line", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// The last `STATUS=` sent, so an unchanged line is not sent again.
private final class LockedStatus: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?

    func set(_ status: String) {
        lock.withLock { value = status }
    }

    /// Stores `status`; returns whether it differs from the previous one.
    func replace(with status: String) -> Bool {
        lock.withLock {
            defer { value = status }
            return value != status
        }
    }
}
