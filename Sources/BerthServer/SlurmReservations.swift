import BerthConfig
import BerthCore
public import BerthExecutors
public import BerthStore
import BerthWire
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The Slurm reservations that hold berth's reservations' nodes on the cluster, so no other
/// Slurm user takes that capacity meanwhile. One is made in the same admission as the berth
/// reservation it stands for, for the nodes of the units the admission pinned and the same
/// window, a later start included (refused with Slurm's reason, nothing made on either side);
/// every other change (a `--wait` reservation that starts, units added, release, expiry, a
/// berthd that died between the two) is caught up by a pass that makes the cluster match the
/// ledger.
/// Whole nodes are reserved: a Slurm 22.05 reservation holds CPUs, nodes, licenses and burst
/// buffers, never GRES, so not GPU by GPU.
public final class SlurmReservations: Service, Sendable {
    private let ledger: Ledger
    private let commands: SlurmCommands
    private let naming: SlurmNaming
    private let hardware: UnitDirectory
    private let logger: Logger
    /// berthd's user, let into every reservation it makes.
    private let user: String
    /// When berthd is root, the user serve jobs of base models run as.
    private let serviceUser: String?
    private let wakeUps = WakeUps()
    /// Passes run one at a time, off the cooperative pool: each runs a few `scontrol`s.
    private let queue = DispatchQueue(label: "berth.slurm-reservations")
    /// Names made by an admission whose transaction may not be committed yet: a pass that
    /// reads the ledger before that commit must not take them for leftovers.
    private let admitted = Mutex<[String: ContinuousClock.Instant]>([:])
    let interval: Duration

    public init(
        ledger: Ledger,
        commands: SlurmCommands,
        naming: SlurmNaming,
        hardware: UnitDirectory,
        logger: Logger,
        serviceUser: String? = nil,
        interval: Duration = .seconds(5)
    ) {
        self.ledger = ledger
        self.commands = commands
        self.naming = naming
        self.hardware = hardware
        self.logger = logger
        self.interval = interval
        user = getpwuid(geteuid()).flatMap { String(validatingCString: $0.pointee.pw_name) } ?? String(geteuid())
        self.serviceUser = geteuid() == 0 ? serviceUser : nil
    }

    /// Who may run jobs in the Slurm reservation of `reservation`: berthd's user, and when
    /// berthd is root the users its runners run as there: the owner (their jobs, their custom
    /// models' serve jobs) and, for inference, the service user.
    func users(of reservation: Reservation) -> [String] {
        var users = [user]
        guard geteuid() == 0 else { return users }
        users.append(reservation.owner)
        if reservation.purpose == .inference, let serviceUser { users.append(serviceUser) }
        var seen = Set<String>()
        return users.filter { seen.insert($0).inserted }
    }

    public func wake() { wakeUps.ring() }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var iterator = self.wakeUps.makeIterator()
            repeat {
                await self.sync()
            } while await self.wakeUps.next(&iterator, within: self.interval, clock: ContinuousClock())
        }
    }

    /// Inside the admission's transaction, after `reservationID` was inserted: a reservation on
    /// Slurm units had its units pinned by the admission, now or for a later start, and its Slurm
    /// reservation of those units' nodes over the same window is made before the commit. A
    /// refusal throws, which undoes the berth reservation with it.
    func admit(_ reservationID: Int64, tx: LedgerTransaction, now: Date) throws {
        guard let reservation = try tx.reservation(id: reservationID) else { return }
        let nodes = self.nodes(of: reservation.pinnedUnits)
        guard !nodes.isEmpty else { return }
        let name = naming.reservation(reservationID)
        admitted.withLock { $0[name] = .now }
        do throws(SlurmCommands.Failure) {
            try create(name, nodes: nodes, start: reservation.start, end: reservation.end, users: users(of: reservation), now: now)
        } catch {
            admitted.withLock { $0[name] = nil }
            throw APIError(
                .insufficientCapacity,
                "Slurm refused to reserve \(nodes.joined(separator: ",")) for it: \(error.message); ask the cluster's admin (scontrol show reservation), or reserve later"
            )
        }
        logger.info(
            "Slurm reservation made",
            metadata: ["reservation": "\(reservation.name)", "slurm": "\(name)", "nodes": "\(nodes.joined(separator: ","))"]
        )
    }

    /// Makes the cluster's reservations match the ledger's now.
    public func sync() async {
        await withCheckedContinuation { continuation in
            queue.async {
                self.syncNow()
                continuation.resume()
            }
        }
    }

    private func syncNow() {
        let wanted: [String: (nodes: [String], start: Date, end: Date?, users: [String])]
        do {
            let now = Date()
            wanted = try ledger.readNow { tx in
                var wanted: [String: (nodes: [String], start: Date, end: Date?, users: [String])] = [:]
                for r in try tx.liveReservations() {
                    let units: [String]
                    switch r.status {
                    case .active: units = try tx.leases(reservationID: r.id).filter { $0.end.map { $0 > now } ?? true }.map(\.unit)
                    case .pending: units = r.waiting ? [] : r.pinnedUnits
                    default: units = []
                    }
                    let nodes = self.nodes(of: units)
                    if !nodes.isEmpty { wanted[naming.reservation(r.id)] = (nodes, r.start, r.end, users(of: r)) }
                }
                return wanted
            }
        } catch {
            logger.error("cannot read reservations for Slurm", metadata: ["error": "\(error)"])
            return
        }
        let existing: [String: String]
        do {
            existing = Dictionary(
                try commands.run(commands.scontrol, ["show", "reservation", "--oneliner"]).split(whereSeparator: \.isNewline)
                    .compactMap(SlurmText.reservationLine).filter { $0.name.hasPrefix(naming.prefix) }.map { ($0.name, $0.nodes) },
                uniquingKeysWith: { a, _ in a }
            )
        } catch {
            logger.warning("cannot list Slurm reservations", metadata: ["error": "\(error)"])
            return
        }
        let now = Date()
        let recent = admitted.withLock { admitted in
            admitted = admitted.filter { ContinuousClock.now - $0.value < .seconds(60) && wanted[$0.key] == nil }
            return Set(admitted.keys)
        }
        for (name, want) in wanted.sorted(by: { $0.key < $1.key }) {
            do throws(SlurmCommands.Failure) {
                if let nodes = existing[name] {
                    guard try expand(nodes) != want.nodes.sorted() else { continue }
                    _ = try commands.run(commands.scontrol, ["update", "ReservationName=\(name)", "Nodes=\(want.nodes.joined(separator: ","))"])
                    logger.info("Slurm reservation changed", metadata: ["slurm": "\(name)", "nodes": "\(want.nodes.joined(separator: ","))"])
                } else {
                    try create(name, nodes: want.nodes, start: want.start, end: want.end, users: want.users, now: now)
                    logger.info("Slurm reservation made", metadata: ["slurm": "\(name)", "nodes": "\(want.nodes.joined(separator: ","))"])
                }
            } catch {
                logger.warning("cannot make the Slurm reservation match", metadata: ["slurm": "\(name)", "error": "\(error)"])
            }
        }
        for name in existing.keys.sorted() where wanted[name] == nil && !recent.contains(name) {
            do throws(SlurmCommands.Failure) {
                _ = try commands.run(commands.scontrol, ["delete", "ReservationName=\(name)"])
                logger.info("Slurm reservation deleted", metadata: ["slurm": "\(name)"])
            } catch {
                // "in use": a job in it is still ending; the next pass tries again.
                logger.debug("Slurm reservation not deleted yet", metadata: ["slurm": "\(name)", "error": "\(error)"])
            }
        }
    }

    /// The nodes of the Slurm units among `units`, each once, in order.
    private func nodes(of units: [String]) -> [String] {
        let described = hardware.units
        var nodes: [String] = []
        for unit in units {
            if let node = described[unit]?.node, !nodes.contains(node) { nodes.append(node) }
        }
        return nodes
    }

    /// `scontrol show hostnames` expands Slurm's host lists (`gpu[1-3]`).
    private func expand(_ list: String) throws(SlurmCommands.Failure) -> [String] {
        guard list.contains("[") else { return list.split(separator: ",").map(String.init).sorted() }
        return try commands.run(commands.scontrol, ["show", "hostnames", list]).split(whereSeparator: \.isNewline).map(String.init).sorted()
    }

    /// From `start` (or now) to `end`, both relative to now, so the controller's clock and time
    /// zone decide nothing berth did not, for `users` only; never starting later or ending
    /// earlier than berth's window. A node another berth reservation already holds may be
    /// shared (`OVERLAP`): berth keeps its own reservations apart, unit by unit.
    private func create(_ name: String, nodes: [String], start: Date, end: Date?, users: [String], now: Date) throws(SlurmCommands.Failure) {
        let lead = max(0, Int(start.timeIntervalSince(now).rounded(.down)))
        var arguments = [
            "create", "reservation", "ReservationName=\(name)", "Nodes=\(nodes.joined(separator: ","))",
            lead > 0 ? "StartTime=now+\(lead)" : "StartTime=now", "Users=\(users.joined(separator: ","))",
        ]
        if let end {
            arguments.append("EndTime=now+\(max(lead + 60, Int(end.timeIntervalSince(now).rounded(.up))))")
        } else {
            arguments.append("Duration=UNLIMITED")
        }
        // The jobs running there are ours too, in the other reservation: not a reason to refuse.
        if try sharesNodeWithOurs(nodes) { arguments.append("Flags=OVERLAP,IGNORE_JOBS") }
        _ = try commands.run(commands.scontrol, arguments)
    }

    private func sharesNodeWithOurs(_ nodes: [String]) throws(SlurmCommands.Failure) -> Bool {
        let lines = try commands.run(commands.scontrol, ["show", "reservation", "--oneliner"]).split(whereSeparator: \.isNewline)
        for (name, list) in lines.compactMap(SlurmText.reservationLine) where name.hasPrefix(naming.prefix) {
            if !Set(try expand(list)).isDisjoint(with: nodes) { return true }
        }
        return false
    }
}

/// What berthd needs of `[executors.slurm]`: the executor jobs and serve processes on Slurm
/// units go through, and the service that keeps the cluster's reservations.
struct SlurmSetup {
    var executor: SlurmExecutor
    var reservations: SlurmReservations

    /// The executor of each unit on a Slurm node, for the planner: one reservation, one executor.
    static func unitExecutors(_ units: [ComputeUnit]) -> [String: String] {
        Dictionary(units.compactMap { unit in unit.node.map { _ in (unit.id, "slurm") } }, uniquingKeysWith: { a, _ in a })
    }

    /// `nil` without `[executors.slurm]`. Serve jobs a previous berthd left for reservations that
    /// ended are cancelled; the others, and job runners, are left to be followed again.
    init?(
        config: DaemonConfig.Slurm?,
        ledger: Ledger,
        runnerFolders: [String],
        hardware: UnitDirectory,
        serviceUser: String?,
        logger: Logger
    ) async {
        guard let config else { return nil }
        let commands = SlurmCommands(
            sbatch: config.sbatch,
            scancel: config.scancel,
            squeue: config.squeue,
            sacct: config.sacct,
            scontrol: config.scontrol,
            sinfo: config.sinfo
        )
        let naming = SlurmNaming(ledgerPath: ledger.path)
        executor = SlurmExecutor(
            commands: commands,
            partition: config.partition,
            account: config.account,
            sharedFolder: config.sharedFolder,
            naming: naming,
            runnerFolders: runnerFolders,
            ledgerPath: ledger.path,
            pollInterval: .milliseconds(Int64(config.pollSeconds * 1000))
        )
        reservations = SlurmReservations(
            ledger: ledger,
            commands: commands,
            naming: naming,
            hardware: hardware,
            logger: logger,
            serviceUser: serviceUser
        )
        // Serve jobs of live reservations are followed again (a restart does not cut an
        // endpoint off); those of reservations that ended meanwhile are cancelled.
        let live = (try? await ledger.read { tx in try tx.liveReservations().filter { $0.status == .active }.map(\.id) }) ?? []
        let keeping = Set(live.map { "serve-\(ServeSupervisor.Key.reservation($0))" })
        let cancelled = await executor.cancelLeftovers(namedFrom: "serve-", keeping: keeping)
        if !cancelled.isEmpty {
            logger.warning("cancelled serve jobs a previous berthd left on Slurm", metadata: ["slurm_jobs": "\(cancelled.joined(separator: ","))"])
        }
        logger.info(
            "Slurm executor",
            metadata: ["partition": "\(config.partition)", "shared_folder": "\(config.sharedFolder)", "names": "\(naming.prefix)*"]
        )
    }
}
