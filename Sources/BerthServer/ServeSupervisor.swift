import BerthClient
public import BerthCore
public import BerthExecutors
public import BerthStore
import Crypto
public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs the long-lived serve processes: one per active inference reservation, on its units,
/// and one per on-demand base model on the shared pool (started at its first call). Each
/// listens on a loopback port berthd chose and speaks `POST /v1/completions`.
public actor ServeSupervisor: Service {
    public enum Key: Hashable, Sendable, CustomStringConvertible {
        case reservation(Int64)
        case onDemand(String)

        public var description: String {
            switch self {
            case .reservation(let id): "reservation-\(id)"
            case .onDemand(let model): "on-demand-\(model.replacingOccurrences(of: "/", with: "_"))"
            }
        }
    }

    struct Server {
        var process: any Runner
        var port: Int
        var ready: Bool
        /// The model it serves and the units it runs on: a reservation moved to another model,
        /// or given more units, gets a new process.
        var model: String
        var units: [String]
        var readySince: ContinuousClock.Instant?
        /// Health checks once it is ready.
        var liveness: LivenessProbe?
        /// For a serve job on Slurm: the loopback port `port` that leads to where it listens.
        var forwarder: SlurmServeForwarder?
    }

    private let ledger: Ledger
    /// Each serve process's token, which it gets as `BERTH_SERVE_TOKEN` and every call to it
    /// carries.
    nonisolated let tokens: ServeTokens
    private let settings: JobSettings
    private let executor: any RunnerExecutor
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let supervision: Supervision
    private var servers: [Key: Server] = [:] {
        didSet {
            // A forwarder goes with the serve job it leads to.
            for (key, old) in oldValue {
                if let forwarder = old.forwarder, servers[key]?.forwarder !== forwarder { forwarder.close() }
            }
            readyPorts.withLock { known in
                var ready: [Key: ReadyServe] = [:]
                for (key, server) in servers where server.ready {
                    // A process keeps its token for as long as it runs: worked out once, not per call.
                    let authorization = known[key]?.authorization ?? tokens.authorization(for: key)
                    ready[key] = ReadyServe(port: server.port, authorization: authorization)
                }
                known = ready
            }
            answerWaiters()
        }
    }
    /// Calls waiting in `port(for:)` for a serve process to be ready, by a number each, so
    /// one that gives up can take itself off. Answered whenever `servers` changes.
    private let portWaiters = Mutex<(waiting: [Int: (key: Key, continuation: CheckedContinuation<Int?, Never>)], next: Int)>(([:], 0))
    /// The ports of ready serve processes and the header each call to one carries, readable
    /// without a hop onto this actor: every call asks.
    private let readyPorts = Mutex<[Key: ReadyServe]>([:])

    struct ReadyServe {
        var port: Int
        var authorization: (String, String)
    }
    /// Keys whose process is being started: `start` awaits before it records the process, and
    /// a second start meanwhile would run a second process and lose track of the first.
    private var starting: Set<Key> = []
    /// After a crash: how many in a row, and not before when to start again.
    private var backoff: [Key: RestartBackoff] = [:]
    private let onReservationFailed: @Sendable () -> Void
    /// How long a serve process may take to answer its first health check.
    static let startTimeout: Duration = .seconds(30)
    /// The same for a serve process submitted to Slurm, which may first wait in its queue.
    static let clusterStartTimeout: Duration = .seconds(120)

    public init(
        ledger: Ledger,
        settings: JobSettings,
        executor: any RunnerExecutor,
        clock: @escaping @Sendable () -> Date,
        timer: any Clock<Duration> = ContinuousClock(),
        logger: Logger,
        onReservationFailed: @escaping @Sendable () -> Void
    ) throws {
        self.ledger = ledger
        tokens = ServeTokens(secret: try ledger.writeNow { try $0.secret(named: "serve") })
        self.settings = settings
        self.executor = executor
        self.clock = clock
        self.logger = logger
        self.onReservationFailed = onReservationFailed
        supervision = Supervision(interval: .seconds(1), clock: timer)
    }

    public nonisolated func wake() {
        supervision.wake()
    }

    public func run() async throws {
        await supervision.run(reconcile: { await self.reconcile() }, stop: { await self.stopAll() })
    }

    /// Stops this host's serve processes. Serve jobs on Slurm run on, as job runners do: the
    /// next berthd follows them again, so a restart does not take the endpoint down.
    private func stopAll() async {
        let onCluster = servers.values.filter { $0.process.reference != nil }
        await supervision.stopAll(servers.values.filter { $0.process.reference == nil }.map(\.process), grace: settings.stopGrace)
        for server in onCluster {
            server.process.stopFollowing()
            server.forwarder?.close()
        }
        if !onCluster.isEmpty {
            logger.info("leaving serve jobs running on Slurm; the next berthd follows them", metadata: ["count": "\(onCluster.count)"])
        }
        // Nothing will become ready now: calls still waiting get their answer.
        let waiting = portWaiters.withLock { state in
            defer { state.waiting = [:] }
            return state.waiting.values.map(\.continuation)
        }
        for continuation in waiting { continuation.resume(returning: nil) }
    }

    /// The port of a ready serve process for `key`, waiting while it starts; `nil` if it is
    /// not running (a reservation that is not active, or a crash being backed off).
    public func port(for key: Key) async -> Int? {
        if let server = servers[key], server.ready { return server.port }
        guard !supervision.isStopping else { return nil }
        if servers[key] == nil { wake() }
        let ticket = portWaiters.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        return await withTaskGroup(of: Int?.self) { group in
            group.addTask { await self.readiness(key, ticket: ticket) }
            group.addTask {
                // A reservation made a moment ago may not have its process yet: the next pass
                // gets a few seconds to start one before the answer is that there is none.
                let timer = self.supervision.clock
                if (try? await timer.sleep(for: .seconds(3), tolerance: nil)) == nil { return nil }
                if await !self.hasProcess(key) { return nil }
                try? await timer.sleep(for: Self.startTimeout - .seconds(3), tolerance: nil)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func hasProcess(_ key: Key) -> Bool {
        servers[key] != nil || starting.contains(key)
    }

    /// Resumed by `answerWaiters` when `key`'s process is ready (its port) or gone (`nil`), or
    /// with `nil` when the caller stops waiting.
    private nonisolated func readiness(_ key: Key, ticket: Int) async -> Int? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int?, Never>) in
                let cancelled = portWaiters.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiting[ticket] = (key, continuation)
                    return false
                }
                if cancelled {
                    continuation.resume(returning: nil)
                    return
                }
                // It may have become ready between the caller's look and this registration, with
                // nobody yet to answer: `readyPorts` is set before waiters are answered, so one
                // of the two sees the other. Whoever takes the entry out answers it.
                if let port = readyPorts.withLock({ $0[key]?.port }),
                    let waiter = portWaiters.withLock({ $0.waiting.removeValue(forKey: ticket) })
                {
                    waiter.continuation.resume(returning: port)
                }
            }
        } onCancel: {
            portWaiters.withLock { $0.waiting.removeValue(forKey: ticket) }?.continuation.resume(returning: nil)
        }
    }

    /// Answers the waiters of every key whose process is now ready.
    private func answerWaiters() {
        let answers = portWaiters.withLock { state -> [(CheckedContinuation<Int?, Never>, Int)] in
            var answers: [(CheckedContinuation<Int?, Never>, Int)] = []
            for (ticket, waiter) in state.waiting {
                guard let server = servers[waiter.key], server.ready else { continue }
                answers.append((waiter.continuation, server.port))
                state.waiting[ticket] = nil
            }
            return answers
        }
        for (continuation, port) in answers { continuation.resume(returning: port) }
    }

    /// `key`'s process has gone before it was ready and what that means is recorded: its
    /// waiters get `nil` now rather than at their timeout.
    private func giveUp(_ key: Key) {
        let waiting = portWaiters.withLock { state -> [CheckedContinuation<Int?, Never>] in
            let tickets = state.waiting.filter { $0.value.key == key }.map(\.key)
            return tickets.compactMap { state.waiting.removeValue(forKey: $0)?.continuation }
        }
        for continuation in waiting { continuation.resume(returning: nil) }
    }

    /// The on-demand serve process of a base model, started if it is not running.
    public func onDemandPort(model: Model) async -> Int? {
        let key = Key.onDemand(model.id)
        // Claimed before the first await: calls that arrive together start one process.
        if servers[key] == nil, !isBackingOff(key), claim(key) {
            let shared = (try? await ledger.read { tx in try tx.units().filter { $0.pool == .shared } }) ?? []
            // Spread models over the shared units by name, so the same model lands on the same unit.
            let index = model.id.unicodeScalars.reduce(0) { ($0 &* 31 &+ Int($1.value)) & 0xFFFF }
            let unit = shared.isEmpty ? [] : [shared[index % shared.count].id]
            await start(key, model: model, units: unit, reservation: nil)
        }
        return await port(for: key)
    }

    /// The header every call to that serve process carries: kept beside its port while it is
    /// ready, since it stays the same while the process runs and every call needs it (an HMAC
    /// per call was about 2 % of berthd's time under load).
    nonisolated func authorization(for key: Key) -> (String, String) {
        readyPorts.withLock { $0[key]?.authorization } ?? tokens.authorization(for: key)
    }

    /// The port if the serve process is ready now, without waiting.
    public nonisolated func readyPort(for key: Key) -> Int? {
        readyPorts.withLock { $0[key]?.port }
    }

    private func isBackingOff(_ key: Key) -> Bool {
        backoff[key].map { !$0.allowsStart(at: .now) } ?? false
    }

    private func reconcile() async {
        guard !supervision.isStopping else { return }
        let wanted: [(Reservation, Model?, [String])]
        do {
            wanted = try await ledger.read { tx in
                try tx.activeReservations(purpose: .inference).map { r in
                    (r, try tx.model(id: r.model), try tx.leases(reservationID: r.id).filter { $0.end.map { $0 > Date() } ?? true }.map(\.unit))
                }
            }
        } catch {
            logger.error("cannot read reservations", metadata: ["error": "\(error)"])
            return
        }
        // 1. Processes that died: count it, and back off before the next start.
        for (key, server) in servers where server.process.hasExited {
            servers[key] = nil
            let now = ContinuousClock.now
            let next = RestartBackoff.afterCrash(backoff[key], readySince: server.readySince, now: now)
            backoff[key] = next
            logger.warning(
                "serve process exited; restarting after a backoff",
                metadata: ["serve": "\(key)", "failures": "\(next.failures)", "backoff": "\(next.notBefore - now)"]
            )
            if case .reservation(let id) = key {
                _ = try? await ledger.write { tx in try tx.countServeRestart(reservationID: id) }
            }
        }
        // 2. Processes that are up but stopped answering: check them every few seconds.
        let now = ContinuousClock.now
        for (key, server) in servers where !server.process.hasExited {
            guard var probe = server.liveness, probe.isDue(at: now) else { continue }
            probe.started(at: now)
            servers[key]?.liveness = probe
            let (process, port) = (server.process, server.port)
            supervision.detach { await self.checkHealth(key, process: process, port: port) }
        }
        // 3. Reservations that ended: stop their processes.
        let live = Dictionary(wanted.map { (Key.reservation($0.0.id), ($0.0.model, $0.2.sorted())) }, uniquingKeysWith: { a, _ in a })
        for (key, server) in servers {
            if case .reservation = key, live[key].map({ $0.0 != server.model || $0.1 != server.units.sorted() }) ?? true {
                supervision.stopLater(server.process, grace: settings.stopGrace)
                servers[key] = nil
                backoff[key] = nil
                giveUp(key)
                logger.info("serve process stopped", metadata: ["serve": "\(key)"])
            }
        }
        // 4. Active inference reservations without a process: start one on their units.
        for (reservation, model, units) in wanted {
            let key = Key.reservation(reservation.id)
            guard servers[key] == nil, !isBackingOff(key), let model, claim(key) else { continue }
            await start(key, model: model, units: units, reservation: reservation)
        }
    }

    /// Marks `key` as being started; false if it already is.
    private func claim(_ key: Key) -> Bool {
        starting.insert(key).inserted
    }

    /// Starts a process for `key`, which the caller has claimed.
    private func start(_ key: Key, model: Model, units: [String], reservation: Reservation?) async {
        defer { starting.remove(key) }
        do {
            let port = try Self.freeLoopbackPort()
            let folder = settings.logDirectory + "/serve"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let catalog = (try? await ledger.read { tx in try tx.units() }) ?? []
            let (identity, owner) = await Self.identity(of: model, ledger: ledger, settings: settings)
            if settings.runnersActAsCallers && identity == nil {
                throw RunnerProcess.SpawnError(
                    description: model.isCustom
                        ? "the owner of \(model.id) is not a user of this machine; berthd runs no model as root for someone else"
                        : "the service user '\(settings.runners.serviceUser)' does not exist, nor does nobody; create it (make install does) or set [runners] service_user"
                )
            }
            // As root, a custom model is served as its owner and a base model as the service
            // user; otherwise as berthd, with the owner's model folder opened again now.
            var modelDir = model.artifactDir ?? ""
            var passed: [Int32] = []
            defer { passed.forEach { close($0) } }
            let placed = settings.units(units, in: catalog)
            var draft = RunnerLaunch(argv: [], units: placed, identity: nil, logPath: "\(folder)/\(key).log")
            draft.name = "serve-\(key)"
            // On Slurm the model folder is read by path, as the user the job runs as.
            let elsewhere = try executor.handOverFolder(for: draft) != nil
            if !settings.runnersActAsCallers, !elsewhere, let dir = model.artifactDir, let owner {
                let resolver = PathResolver(access: FileAccess(uid: owner.uid, groups: Set(owner.groups)), user: owner.user)
                do throws(PathResolver.Refusal) {
                    passed.append(try resolver.openFolder(dir, field: "model_dir", bits: 5, create: false))
                } catch {
                    throw RunnerProcess.SpawnError(description: error.description)
                }
                modelDir = "/proc/self/fd/3"
            }
            // A serve job on a Slurm node is called from berthd's host, so it listens on the
            // node's addresses; on this host, on loopback only.
            let argv = try ArgvTemplate(settings.runners.serve).expand([
                "model_dir": modelDir, "port": String(port), "model": model.id, "host": elsewhere ? "0.0.0.0" : "127.0.0.1",
            ])
            // A process started after the shutdown's last look would outlive berthd.
            guard !supervision.isStopping else { return }
            var launch = draft
            launch.argv = argv
            launch.identity = identity
            launch.environment = ["BERTH_SERVE": "\(key)", "BERTH_SERVE_TOKEN": tokens.token(for: key)]
            launch.passedDescriptors = passed
            launch.confinement = settings.confinement("\(key)", units: placed)
            launch.servePort = port
            if elsewhere, case .reservation(let id) = key {
                launch.clusterReservation = settings.slurmNaming?.reservation(id)
                await settings.prepareCluster?()
            }
            let process = try await executor.start(launch)
            servers[key] = Server(process: process, port: port, ready: false, model: model.id, units: units)
            // Its stdout is not berthd's business: into its log, so nothing piles up in memory.
            let log = "\(folder)/\(key).log"
            supervision.detach {
                let handle = FileHandle(forWritingAtPath: log)
                for await lines in process.lineBatches() {
                    handle?.seekToEndOfFile()
                    handle?.write(Data((lines.joined(separator: "\n") + "\n").utf8))
                }
                try? handle?.close()
            }
            // What it used goes into the ledger when it ends, however it ends.
            if let id = reservation?.id {
                supervision.detach { [ledger] in
                    guard await process.exitStatus() != nil else { return }
                    let usage = process.usage
                    guard usage.cpuSeconds != nil || usage.peakMemoryBytes != nil else { return }
                    _ = try? await ledger.write { tx in
                        try tx.addServeResources(reservationID: id, cpuSeconds: usage.cpuSeconds, peakMemoryBytes: usage.peakMemoryBytes)
                    }
                }
            }
            logger.info(
                "serve process started",
                metadata: ["serve": "\(key)", "port": "\(port)", "pid": "\(process.pid)", "units": "\(units.joined(separator: ","))"]
            )
            supervision.detach { await self.awaitHealthy(key, process: process, port: port, reservation: reservation) }
        } catch {
            logger.error("serve process did not start", metadata: ["serve": "\(key)", "error": "\(error)"])
            await fail(key, reservation: reservation, reason: "serve process did not start: \(error)")
        }
    }

    /// Polls `GET /health` until it answers 200; a reservation whose server never does fails.
    private func awaitHealthy(_ key: Key, process: any Runner, port: Int, reservation: Reservation?) async {
        var client = SocketClient(loopbackPort: port)
        // A Slurm job may wait for the cluster to start it, and says where it listens first.
        let onCluster = process as? SlurmRunner
        let deadline = ContinuousClock.now + (onCluster == nil ? Self.startTimeout : Self.clusterStartTimeout)
        while ContinuousClock.now < deadline && !process.hasExited {
            if let onCluster, servers[key]?.forwarder == nil {
                // It says where it listens once Slurm has started it; berthd reaches it there
                // through a loopback port of its own, as it reaches a local serve process.
                guard let address = onCluster.address, servers[key]?.process === process else {
                    try? await supervision.clock.sleep(for: .milliseconds(100), tolerance: nil)
                    continue
                }
                do {
                    let forwarder = try await SlurmServeForwarder.start(to: address.host, port: address.port)
                    guard servers[key]?.process === process else {
                        forwarder.close()
                        return
                    }
                    servers[key]?.forwarder = forwarder
                    servers[key]?.port = forwarder.port
                    client = SocketClient(loopbackPort: forwarder.port)
                    logger.info(
                        "serve job listens on its node",
                        metadata: ["serve": "\(key)", "host": "\(address.host)", "port": "\(address.port)", "loopback": "\(forwarder.port)"]
                    )
                } catch {
                    logger.error("cannot forward a loopback port to the serve job", metadata: ["serve": "\(key)", "error": "\(error)"])
                    break
                }
            }
            if let answer = try? await client.send(method: "GET", path: "/health"), answer.status == 200 {
                if servers[key]?.process === process {
                    servers[key]?.ready = true
                    servers[key]?.readySince = .now
                    servers[key]?.liveness = LivenessProbe(readyAt: .now)
                    logger.info("serve process ready", metadata: ["serve": "\(key)", "port": "\(servers[key]?.port ?? port)"])
                }
                return
            }
            try? await supervision.clock.sleep(for: .milliseconds(50), tolerance: nil)
        }
        guard servers[key]?.process === process else { return }
        process.signalGroup(SIGKILL)
        servers[key] = nil
        let seconds = (onCluster == nil ? Self.startTimeout : Self.clusterStartTimeout).components.seconds
        await fail(
            key,
            reservation: reservation,
            reason: process.hasExited
                ? "serve process exited before it answered; see \(settings.logDirectory)/serve/\(key).log"
                : "serve process did not answer within \(seconds) s; see \(settings.logDirectory)/serve/\(key).log"
        )
    }

    /// One liveness check of a ready process. One that fails `LivenessProbe.failuresToRestart`
    /// in a row is killed; the next pass counts that as a crash and starts it again.
    private func checkHealth(_ key: Key, process: any Runner, port: Int) async {
        let answer = try? await SocketClient(loopbackPort: port).send(method: "GET", path: "/health", timeout: LivenessProbe.timeout)
        guard servers[key]?.process === process, var probe = servers[key]?.liveness else { return }
        let verdict = probe.answered(healthy: answer?.status == 200)
        servers[key]?.liveness = probe
        let seen = answer.map { "answered \($0.status)" } ?? "no answer within \(LivenessProbe.timeout)"
        switch verdict {
        case .healthy:
            break
        case .failing(let failures):
            logger.warning(
                "serve process failed a health check",
                metadata: ["serve": "\(key)", "port": "\(port)", "failures": "\(failures)", "check": "\(seen)"]
            )
        case .restart:
            logger.error(
                "serve process stopped answering its health checks; killing it to start it again",
                metadata: ["serve": "\(key)", "port": "\(port)", "pid": "\(process.pid)", "check": "\(seen)"]
            )
            process.signalGroup(SIGKILL)
            wake()
        }
    }

    /// A reservation whose serve process cannot start is `failed`, with the reason.
    private func fail(_ key: Key, reservation: Reservation?, reason: String) async {
        guard let reservation else {
            // An on-demand process has no reservation to fail: calls get "not ready" for 5 s,
            // then it is tried again.
            backoff[key] = RestartBackoff(failures: 1, notBefore: .now + .seconds(5))
            giveUp(key)
            return
        }
        let now = clock()
        logger.error("inference reservation failed", metadata: ["reservation": "\(reservation.name)", "reason": "\(reason)"])
        _ = try? await ledger.write { tx in
            guard let current = try tx.reservation(id: reservation.id), current.status == .active else { return }
            try tx.finish(reservationID: reservation.id, status: .failed, at: now, reason: reason)
        }
        giveUp(key)
        onReservationFailed()
    }

    /// Whom a serve process of `model` runs as (`nil`: berthd's own user), and the owner whose
    /// rights its model folder is checked with: a custom model's owner, as the job that made it
    /// ran; a base model's is the service user's.
    static func identity(of model: Model, ledger: Ledger, settings: JobSettings) async -> (run: RunnerIdentity?, owner: RunnerIdentity?) {
        var owner: RunnerIdentity?
        if model.isCustom {
            if let jobID = model.jobID, let job = try? await ledger.read({ tx in try tx.job(id: jobID) }) {
                owner = job.submitter
            } else if let name = model.owner {
                owner = RunnerIdentity.named(name) ?? UInt32(name).map { RunnerIdentity.of(uid: $0, gid: $0) }
            }
        } else {
            owner = settings.serviceIdentity
        }
        return (settings.runnersActAsCallers ? owner : nil, owner)
    }

    /// A port the kernel says is free on 127.0.0.1 now.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The token of each serve process: an HMAC of its key under a secret the ledger keeps, so a
/// restarted berthd knows the token of a serve job that ran on, and knowing one token (its
/// owner can read their process's environment) tells nothing of another's.
struct ServeTokens: Sendable {
    private let key: SymmetricKey

    init(secret: Data) {
        key = SymmetricKey(data: secret)
    }

    /// Worked out at every call, in a few microseconds: hex digits from a table, as
    /// `String(format:)` per byte cost tens.
    func token(for serve: ServeSupervisor.Key) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(2 * SHA256.byteCount)
        for byte in HMAC<SHA256>.authenticationCode(for: Data(serve.description.utf8), using: key) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// The header a call to that serve process carries.
    func authorization(for serve: ServeSupervisor.Key) -> (String, String) {
        ("Authorization", "Bearer \(token(for: serve))")
    }
}
