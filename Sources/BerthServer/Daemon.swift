public import BerthConfig
import BerthCore
import BerthExecutors
import BerthStore
import BerthWire
import CBerthSpawn
public import Foundation
public import Hummingbird
public import Logging
import NIOCore
import NIOPosix
public import Prometheus
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The daemon: locks, ledger, scheduler and the socket server, run until SIGTERM or SIGINT.
public struct Daemon: Sendable {
    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    public var config: DaemonConfig
    public var socketPath: String
    public var databasePath: String
    public var logger: Logger
    public var clock: @Sendable () -> Date
    /// Where `GET /metrics` series live. berthd passes the registry it bootstrapped
    /// swift-metrics with; a test can pass its own, or none.
    public var metricsRegistry: PrometheusCollectorRegistry

    public init(
        config: DaemonConfig,
        socketPath: String? = nil,
        databasePath: String? = nil,
        logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() },
        metricsRegistry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) {
        self.config = config
        self.socketPath = socketPath ?? config.daemon.socket
        self.databasePath = databasePath ?? config.daemon.database
        self.logger = logger
        self.clock = clock
        self.metricsRegistry = metricsRegistry
    }

    public func run() async throws {
        // Files berthd creates (the ledger, locks) are its own; the socket is opened up to its
        // group below, once it exists.
        umask(0o077)
        // Under systemd the control socket may be passed in (socket activation): then systemd
        // owns its file, and berthd neither creates, locks, chmods nor removes it.
        let activated: ListeningSocket?
        do {
            activated = try ListeningSocket.passed(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw StartupError(description: "\(error)")
        }
        for path in activated == nil ? [socketPath, databasePath] : [databasePath] {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755]
            )
        }

        // 1. Refuse to start beside another berthd: one lock per database, one per socket.
        let databaseLock: ProcessLock
        let socketLock: ProcessLock?
        do {
            databaseLock = try ProcessLock(path: databasePath + ".lock")
            socketLock = activated == nil ? try ProcessLock(path: socketPath + ".lock") : nil
        } catch let held as ProcessLock.Held {
            throw StartupError(description: "another berthd is running: \(held); stop it first, or give this one its own --socket and --database")
        }
        if activated == nil, Self.socketAnswers(socketPath) {
            throw StartupError(description: "something already listens on \(socketPath); stop it first or choose another --socket")
        }
        if let address = config.metrics.listen, let reason = Self.cannotBind(address) {
            throw StartupError(
                description: "cannot serve metrics on \(address) (metrics.listen): \(reason); choose another address, or stop what listens there"
            )
        }

        if let address = config.openAI.listen, let reason = Self.cannotBind(address) {
            throw StartupError(
                description:
                    "cannot serve the OpenAI routes on \(address) (openai.listen): \(reason); choose another address, or stop what listens there"
            )
        }

        // As root, runners take their users' identities; base models are served as the service user.
        if geteuid() == 0, RunnerIdentity.named(config.runners.serviceUser) == nil {
            logger.warning(
                """
                service user '\(config.runners.serviceUser)' does not exist: base models are served as nobody; \
                create it (make install does) or set [runners] service_user
                """
            )
        }

        // 2. The ledger: open, bring the catalog up to the config, catch up on what fell due.
        let metrics = DaemonMetrics(registry: metricsRegistry)
        let ledger: Ledger
        do {
            ledger = try Ledger(path: databasePath, writeTimer: { metrics.ledgerWrite($0) }) { [logger] change in
                switch change {
                case .full(let error, let cause):
                    logger.error(
                        "the ledger's disk is full: every change is refused (503 ledger-full) until there is room; nothing recorded is lost",
                        metadata: ["folder": "\(error.folder)", "error": "\(cause)"]
                    )
                case .recovered(let folder):
                    logger.notice("the ledger's disk has room again: changes are recorded", metadata: ["folder": "\(folder)"])
                }
            }
        } catch let error as LedgerFileError {
            throw StartupError(description: error.description)
        }
        for loose in ledger.looseFiles {
            logger.warning(
                "the ledger was readable by other users; made it private",
                metadata: ["file": "\(loose.path)", "was": "\(String(loose.formerMode, radix: 8))", "now": "600"]
            )
        }
        let startedAt = clock().wholeSeconds
        // `[discovery] gpus`: the GPUs the driver lists join the configured units; without
        // them (no driver, no GPU) berthd starts on the configured units alone. nvidia-smi
        // blocks, so it runs on NIO's thread pool.
        var discovered = self.config
        if discovered.discovery.gpus != nil {
            discovered.units =
                (try? await NIOThreadPool.singleton.runIfActive { [config = self.config, logger] in
                    GPUInventory.units(for: config, logger: logger)
                }) ?? self.config.units
        }
        let config = discovered
        // Runners of a berthd that died are gone or orphaned: their jobs fail with daemon-restart.
        // Slurm jobs outlive berthd: theirs stay running, to be followed again.
        let slurmUnits = Set(config.units.filter { $0.node != nil }.map(\.id))
        try JobSupervisor.reconcileAfterRestart(ledger: ledger, now: startedAt, logger: logger) { job in
            config.slurm != nil && (job.slurmJobID != nil || job.units.contains(where: slurmUnits.contains))
        }
        ledger.setUnitExecutors(SlurmSetup.unitExecutors(config.units))
        try ledger.writeNow { tx in
            // As on SIGHUP: a unit a lease holds stays, whatever the new config says.
            let reload = CatalogReload.plan(configured: config.units, current: try tx.units(), holders: try tx.unitHolders())
            try tx.syncCatalog(units: reload.units, models: config.models, now: startedAt)
            _ = try Scheduler.cycle(tx, now: startedAt)
        }
        logger.info("ledger open", metadata: ["database": "\(databasePath)", "units": "\(config.units.count)", "models": "\(config.models.count)"])

        // 3. Services in dependency order; the group stops them in reverse on SIGTERM/SIGINT.
        var jobSettings = JobSettings(
            runners: config.runners,
            limits: config.limits,
            logDirectory: Self.logDirectory(config.daemon.logDirectory, databasePath: databasePath, logger: logger),
            stopGrace: .milliseconds(Int64(config.daemon.stopGraceSeconds * 1000))
        )
        jobSettings.confinement = config.confinement
        jobSettings.hardware.replace(with: config.units)
        // Each runner in a cgroup of its own where the kernel lets berthd make them; where it
        // does not, runners still run, with their devices named in their environment only.
        var cgroups: CgroupTree?
        if config.confinement.enabled {
            (cgroups, jobSettings.confinementSupport) = CgroupTree.open()
        } else {
            jobSettings.confinementSupport = .none("off in the config ([confinement] enabled = false)")
        }
        logger.log(
            level: jobSettings.confinementSupport.reason == nil ? .info : .warning,
            "confinement: \(jobSettings.confinementSupport)"
        )
        // Runners named without a path are looked for beside berthd first, so the shipped
        // config finds the `berth-runner` built with it.
        let runnerFolders = [(CommandLine.arguments[0] as NSString).deletingLastPathComponent, Self.executableFolder].compactMap { $0 }
        let local = LocalExecutor(runnerFolders: runnerFolders, ledgerPath: ledger.path, cgroups: cgroups)
        // Units on Slurm nodes run through sbatch; the rest on this host.
        let cluster = await SlurmSetup(
            config: config.slurm,
            ledger: ledger,
            runnerFolders: runnerFolders,
            hardware: jobSettings.hardware,
            serviceUser: jobSettings.serviceIdentity?.user,
            logger: logger
        )
        jobSettings.slurmNaming = cluster?.executor.naming
        if let reservations = cluster?.reservations { jobSettings.prepareCluster = { await reservations.sync() } }
        let executor = PlacedExecutor(local: local, slurm: cluster?.executor)
        let wakeScheduler = WakeRelay()
        // What compares the clock with the ledger's times reads it as the ledger keeps times.
        let clock: @Sendable () -> Date = { [clock = self.clock] in Ledger.asStored(clock()) }
        let supervisor = JobSupervisor(ledger: ledger, settings: jobSettings, executor: executor, clock: clock, logger: logger) {
            wakeScheduler.fire()
        }
        let serve = try ServeSupervisor(ledger: ledger, settings: jobSettings, executor: executor, clock: clock, logger: logger) {
            wakeScheduler.fire()
        }
        let meter = InvocationMeter(ledger: ledger, logger: logger, metrics: metrics)
        let scheduler = Scheduler(ledger: ledger, clock: clock, logger: logger) {
            supervisor.wake()
            serve.wake()
            cluster?.reservations.wake()
        }
        wakeScheduler.connect { scheduler.wake() }
        let callers = CallerDirectory(admins: config.daemon.admins, adminGroups: config.daemon.adminGroups)
        var services = ControlServices(
            ledger: ledger,
            scheduler: scheduler,
            callers: callers,
            clock: self.clock,
            startedAt: startedAt,
            jobs: jobSettings,
            supervisor: supervisor,
            serve: serve,
            meter: meter,
            metrics: metrics
        )
        services.idleThreshold = config.daemon.idleThresholdSeconds
        services.slurmReservations = cluster?.reservations
        // systemd: READY=1 once the socket is served, STATUS=, the watchdog, STOPPING=1; and
        // SIGHUP reloads units and models.
        let systemd = SystemdLink(environment: ProcessInfo.processInfo.environment, ledger: ledger, logger: logger)
        let reloader = await ConfigReloader(
            config: config,
            ledger: ledger,
            scheduler: scheduler,
            systemd: systemd,
            clock: clock,
            logger: logger,
            hardware: jobSettings.hardware
        )
        let telemetry: [any Service] =
            GPUTelemetry.isNeeded(config.units, discovery: config.discovery)
            ? [
                GPUTelemetry(
                    hardware: jobSettings.hardware,
                    ledger: ledger,
                    metrics: metrics,
                    discovery: config.discovery,
                    clock: clock,
                    logger: logger
                )
            ]
            : []
        let app: any Service =
            if let activated {
                ActivatedSocketServer(
                    socket: activated,
                    router: buildRouter(services),
                    callers: callers,
                    connections: ConnectionPolicy(limits: config.limits),
                    logger: logger
                ) {
                    logger.info(
                        "listening on the socket systemd passed",
                        metadata: ["socket": "\(activated.path ?? "fd 3")", "version": "\(BerthVersion.current)"]
                    )
                    await systemd.ready()
                }
            } else {
                buildApplication(
                    services: services,
                    socketPath: socketPath,
                    socketGroup: config.daemon.socketGroup,
                    connections: ConnectionPolicy(limits: config.limits),
                    logger: logger
                ) { await systemd.ready() }
            }
        // Beside the socket, not instead of it: only GET /metrics, on TCP, if the config asks.
        let metricsListener: [any Service] =
            config.metrics.listen.map { address in
                [
                    TCPListener(
                        address: address,
                        application: buildMetricsApplication(
                            services: services,
                            address: address,
                            connections: ConnectionPolicy(limits: config.limits),
                            logger: logger
                        ),
                        failure: "cannot serve metrics (metrics.listen); the socket's /metrics still answers",
                        logger: logger
                    )
                ]
            } ?? []
        // The OpenAI routes on TCP, with API keys, if the config asks.
        let openAIListener: [any Service] =
            config.openAI.listen.map { address in
                [
                    TCPListener(
                        address: address,
                        application: buildOpenAIApplication(
                            services: services,
                            address: address,
                            connections: ConnectionPolicy(limits: config.limits),
                            logger: logger
                        ),
                        failure: "cannot serve the OpenAI routes (openai.listen); the socket's /openai/v1 still answers",
                        logger: logger
                    )
                ]
            } ?? []
        // `systemd` stays last: the group stops services in reverse order, so it hears of the
        // shutdown first and STOPPING=1 goes out as the shutdown begins. The scheduler stops
        // before the supervisors: a runner stopped at shutdown frees its units, and a scheduler
        // still running would start the next queued job with nobody left to run it.
        let group = ServiceGroup(
            configuration: .init(
                services: [LedgerCheckpointer(ledger: ledger, logger: logger), supervisor, serve, scheduler, meter, reloader]
                    + (cluster.map { [$0.reservations] } ?? []) + telemetry + metricsListener + openAIListener + [app, systemd],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        // Every runner has ended and its group is gone: berthd's own cgroup folders go too.
        cgroups?.remove()

        // 4. In-flight requests are answered; now close the ledger (checkpointing the WAL).
        try ledger.close()
        if activated == nil { unlink(socketPath) }
        withExtendedLifetime((databaseLock, socketLock)) {}
        logger.info("stopped")
    }

    /// The config's log folder if berthd can write there, else `logs` beside the database (a
    /// laptop run without root cannot create /var/log/berth).
    static func logDirectory(_ configured: String, databasePath: String, logger: Logger) -> String {
        let fileManager = FileManager.default
        if (try? fileManager.createDirectory(atPath: configured + "/jobs", withIntermediateDirectories: true)) != nil,
            fileManager.isWritableFile(atPath: configured + "/jobs")
        {
            return configured
        }
        let fallback = (databasePath as NSString).deletingLastPathComponent + "/logs"
        logger.warning("cannot write job logs under \(configured); using \(fallback)")
        return fallback
    }

    /// The folder of the running berthd executable.
    static var executableFolder: String? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { ($0 as NSString).deletingLastPathComponent }
    }

    /// Why a TCP socket cannot be bound to `address` now, or nil if it can. Asked before any
    /// service starts, so that a taken port stops berthd at once with the key to change.
    static func cannotBind(_ address: DaemonConfig.ListenAddress) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let looked = getaddrinfo(address.host, String(address.port), &hints, &found)
        guard looked == 0, let info = found else { return String(cString: gai_strerror(looked)) }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        // As the server will: a port some closed connection still holds in TIME_WAIT is free.
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        return bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 ? nil : String(cString: strerror(errno))
    }

    /// Whether a server answers on `path`: a live socket must never be taken over.
    static func socketAnswers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }
}

/// Assembles the control-socket application; `Daemon.run` only builds and runs it.
public func buildApplication(
    services: ControlServices,
    socketPath: String,
    socketGroup: String?,
    connections: ConnectionPolicy,
    logger: Logger,
    onListening: @escaping @Sendable () async -> Void = {}
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(services),
        server: .http1(identifyingCallersWith: services.callers, configuration: connections.http1Configuration(logger: logger)),
        configuration: ApplicationConfiguration(address: .unixDomainSocket(path: socketPath), serverName: "berthd/\(BerthVersion.current)"),
        onServerRunning: { _ in
            // Users in the socket's group may connect; nobody else.
            var gid = gid_t.max
            if let socketGroup {
                if let found = CallerDirectory.groupID(name: socketGroup) {
                    gid = found
                } else {
                    logger.warning(
                        "socket group '\(socketGroup)' does not exist; only \(CallerDirectory.userName(uid: getuid()) ?? "the daemon's user") can connect"
                    )
                }
            }
            let failed = berth_restrict_socket(socketPath, gid, 0o660)
            if failed != 0 {
                logger.warning("cannot give the socket to group \(socketGroup ?? "-") with mode 0660: \(String(cString: strerror(failed)))")
            }
            logger.info("listening", metadata: ["socket": "\(socketPath)", "version": "\(BerthVersion.current)"])
            await onListening()
        },
        logger: logger
    )
}

/// Assembles the `[metrics] listen` application: `GET /metrics` with every series, for a
/// Prometheus server, which cannot read a UNIX socket. It has no other route, so any other
/// path is 404; and no caller, since TCP carries no peer credentials: whoever reaches the
/// address reads everything.
public func buildMetricsApplication(
    services: ControlServices,
    address: DaemonConfig.ListenAddress,
    connections: ConnectionPolicy,
    logger: Logger
)
    -> some ApplicationProtocol
{
    let metrics = MetricsController(ledger: services.ledger, metrics: services.metrics, clock: services.clock)
    let router = Router()
    router.get("metrics") { _, _ in try await metrics.scrapeAll() }
    return Application(
        router: router,
        server: .http1(configuration: connections.http1Configuration(logger: logger)),
        configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "berthd/\(BerthVersion.current)"),
        onServerRunning: { _ in logger.info("serving metrics", metadata: ["address": "\(address)"]) },
        logger: logger
    )
}

/// Runs an application berthd serves on TCP beside the socket (metrics, the OpenAI routes).
/// `Daemon.run` checked that the address is free; should it be taken in between, the failure
/// is logged with what still answers on the socket, and the rest of berthd goes on serving.
struct TCPListener: Service {
    let address: DaemonConfig.ListenAddress
    let application: any ApplicationProtocol
    /// What the log says when it cannot serve: which key, and what still answers.
    let failure: Logger.Message
    let logger: Logger

    func run() async throws {
        do {
            try await application.run()
        } catch {
            logger.error(failure, metadata: ["address": "\(address)", "error": "\(error)"])
            try? await gracefulShutdown()
        }
    }
}
