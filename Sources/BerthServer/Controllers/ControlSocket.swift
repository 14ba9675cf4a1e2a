import BerthClient
import BerthCore
public import BerthStore
import BerthWire
public import Foundation
public import Hummingbird
import Logging

/// What the control socket's controllers are made from. Only `buildRouter` reads it: each
/// controller is given the few of these it uses.
public struct ControlServices: Sendable {
    public var ledger: Ledger
    public var scheduler: Scheduler
    public var callers: CallerDirectory
    public var clock: @Sendable () -> Date
    public var startedAt: Date
    public var jobs: JobSettings
    public var supervisor: JobSupervisor
    public var serve: ServeSupervisor
    public var meter: InvocationMeter
    /// The Prometheus series `GET /metrics` writes out.
    public var metrics: DaemonMetrics
    /// Reservations with no job and no call for longer than this are flagged as idle in usage reports.
    public var idleThreshold: TimeInterval = 86_400
    /// What every route's calls share (`Invocations`): where targets went, the reservations'
    /// token buckets, and the kept-alive connections to the serve processes.
    let routes = RouteCache()
    let limiter = ThroughputLimiter()
    let serveClient = KeepAliveClient()
    /// The API keys of the OpenAI listener, made and revoked on the socket, checked on TCP.
    let keyring: APIKeyring
    /// The Slurm reservations of reservations on Slurm units; `nil` without `[executors.slurm]`.
    public var slurmReservations: SlurmReservations?

    public init(
        ledger: Ledger,
        scheduler: Scheduler,
        callers: CallerDirectory,
        clock: @escaping @Sendable () -> Date,
        startedAt: Date,
        jobs: JobSettings,
        supervisor: JobSupervisor,
        serve: ServeSupervisor,
        meter: InvocationMeter,
        metrics: DaemonMetrics
    ) {
        self.ledger = ledger
        self.scheduler = scheduler
        self.callers = callers
        self.clock = clock
        self.startedAt = startedAt
        self.jobs = jobs
        self.supervisor = supervisor
        self.serve = serve
        self.meter = meter
        self.metrics = metrics
        keyring = APIKeyring(ledger: ledger, callers: callers, metrics: metrics, clock: clock)
    }
}

/// The router with every endpoint of the control socket, one controller per resource.
public func buildRouter(_ services: ControlServices) -> Router<BerthRequestContext> {
    buildRouter(services, serve: services.serve)
}

/// `serve` apart: a route test gives serve processes that never start.
func buildRouter(_ services: ControlServices, serve: any ServeProcesses) -> Router<BerthRequestContext> {
    let (ledger, scheduler, supervisor) = (services.ledger, services.scheduler, services.supervisor)
    // Calls are timed by the clock as it is; changes to the ledger's state by the clock as
    // the ledger keeps it, to compare with what it reads back (`Ledger.asStored`).
    let callClock = services.clock
    let clock: @Sendable () -> Date = { Ledger.asStored(callClock()) }
    let routes = services.routes
    let commits = CommitGroup(ledger: ledger, clock: clock) { plan, changesServes in
        routes.clear()
        // The batch's own cycle already placed what it could: the scheduler only needs to
        // know when the next start or end falls due, and each supervisor needs to look only if
        // that cycle changed what it follows: the job supervisor jobs, the serve supervisor
        // inference reservations (a batch of reservations made starts no job, and a training
        // reservation has no serve process, while each wake costs the supervisor a read of
        // the ledger).
        scheduler.cycleRan(nextDue: plan.nextWake)
        if plan.steps.contains(where: \.isJobStep) { supervisor.wake() }
        if changesServes { serve.wake() }
        if !plan.steps.isEmpty { services.slurmReservations?.wake() }
    }
    // After a change: the scheduler plans again, the supervisors start or stop processes.
    let changed: @Sendable () -> Void = {
        routes.clear()
        scheduler.wake()
        supervisor.wake()
        serve.wake()
    }

    let router = Router(context: BerthRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    MetricsController(ledger: ledger, metrics: services.metrics, clock: clock).addRoutes(to: router)
    let v1 = router.group("v1")
    HealthController(ledger: ledger, startedAt: services.startedAt, confinement: services.jobs.confinementSupport.description, clock: clock)
        .addRoutes(to: v1)
    CatalogController(ledger: ledger, hardware: services.jobs.hardware, clock: clock).addRoutes(to: v1)
    ReservationsController(ledger: ledger, commits: commits, serve: serve, clock: clock, changed: changed, cluster: services.slurmReservations)
        .addRoutes(to: v1)
    JobsController(ledger: ledger, commits: commits, settings: services.jobs, clock: clock, changed: changed).addRoutes(to: v1)
    let calls = Invocations(services, serve: serve)
    InvocationsController(calls: calls).addRoutes(to: v1)
    APIKeysController(keyring: services.keyring).addRoutes(to: v1)
    OpenAIController(calls: calls, callers: .peerCredentials).addRoutes(to: router.group("openai/v1"))
    UsageController(ledger: ledger, clock: clock, idleThreshold: services.idleThreshold).addRoutes(to: v1)
    return router
}

/// Every error leaves as `{"error":{"code","message"}}` with its status.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = BerthRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as LedgerFullError {
            // The ledger logs the episode once; each refused request is not logged again.
            throw APIError(.ledgerFull, error.description)
        } catch let error as HTTPError {
            switch error.status {
            case .notFound:
                throw APIError(.notFound, "no endpoint \(request.method) \(request.uri.path); docs/openapi.yaml lists the API")
            case .contentTooLarge:
                throw APIError(.payloadTooLarge, "request body is over 1 MiB: send a smaller body")
            default:
                throw APIError(error.status.code >= 500 ? .internal : .invalidArgument, error.body ?? "\(error.status)")
            }
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            throw APIError(.internal, "internal error; the daemon's log has the details")
        }
    }
}
