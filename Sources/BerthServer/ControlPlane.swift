public import BerthStore
import BerthClient
import BerthCore
import BerthWire
public import Foundation
public import Hummingbird
import Logging

/// What every handler of the control socket works with.
public struct ControlPlane: Sendable {
    public let ledger: Ledger
    public let scheduler: Scheduler
    public let callers: CallerDirectory
    public let clock: @Sendable () -> Date
    public let startedAt: Date
    public let jobs: JobSettings
    public let supervisor: JobSupervisor
    public let serve: ServeSupervisor
    public let meter: InvocationMeter
    /// The Prometheus series `GET /metrics` writes out.
    public let metrics: DaemonMetrics
    let limiter = ThroughputLimiter()
    let routes: RouteCache
    /// Kept-alive connections to the serve processes.
    let serveClient = KeepAliveClient()
    /// Group commit for the POSTs that create reservations and jobs.
    let commits: CommitGroup
    /// Reservations with no job and no call for longer than this are flagged as idle in usage reports.
    public var idleThreshold: TimeInterval = 86_400

    public init(
        ledger: Ledger, scheduler: Scheduler, callers: CallerDirectory, clock: @escaping @Sendable () -> Date, startedAt: Date,
        jobs: JobSettings, supervisor: JobSupervisor, serve: ServeSupervisor, meter: InvocationMeter, metrics: DaemonMetrics
    ) {
        self.ledger = ledger
        let routes = RouteCache()
        self.routes = routes
        self.commits = CommitGroup(ledger: ledger, clock: clock) { [scheduler, supervisor, serve] plan in
            routes.clear()
            // The batch's own cycle already placed what it could: the scheduler only needs to
            // know when the next start or end falls due, and the supervisors need to look only
            // if that cycle started or stopped something.
            scheduler.cycleRan(nextDue: plan.nextWake)
            if !plan.steps.isEmpty {
                supervisor.wake()
                serve.wake()
            }
        }
        self.scheduler = scheduler
        self.callers = callers
        self.clock = clock
        self.startedAt = startedAt
        self.jobs = jobs
        self.supervisor = supervisor
        self.serve = serve
        self.meter = meter
        self.metrics = metrics
    }

    /// After a change: the scheduler plans again, the supervisor starts or stops runners.
    func changed() {
        routes.clear()
        scheduler.wake()
        supervisor.wake()
        serve.wake()
    }

    var now: Date { clock().wholeSeconds }

    func caller(_ context: BerthRequestContext) async throws -> Caller {
        let credentials = try await context.peerCredentials()
        return callers.caller(uid: credentials.uid, gid: credentials.gid)
    }

    /// Runs a POST once per `Idempotency-Key`: a retry with the same key and body gets the first
    /// answer back, from the same transaction that made the change, so a crash between the two
    /// cannot make it act twice. Changes are group-committed (`CommitGroup`): the scheduler
    /// runs after `perform`, before the answer is rendered.
    func idempotent(
        _ request: Request, caller: Caller, body: Data, route: String,
        perform: @escaping @Sendable (LedgerTransaction) throws -> Change
    ) async throws -> Response {
        let key = request.headers[.init("Idempotency-Key")!]
        if let key, key.isEmpty || key.utf8.count > 255 {
            throw APIError.invalid(field: "Idempotency-Key", "must be 1 to 255 characters; a UUID is a good key")
        }
        let answer = try await commits.commit(owner: caller.user, key: key, route: route, body: body, perform: perform).encoded()
        return Requests.respond(status: answer.status, body: answer.body)
    }

    /// The router with every endpoint of the control socket.
    public func router() -> Router<BerthRequestContext> {
        let router = Router(context: BerthRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("metrics") { _, context in try await self.scrape(context) }
        let v1 = router.group("v1")
        v1.get("health") { _, _ in try await self.health() }
        v1.get("units") { _, context in try await self.units(context) }
        v1.get("models") { _, context in try await self.models(context) }
        v1.get("models/:id") { _, context in try await self.model(context) }
        v1.post("reservations") { request, context in try await self.createReservation(request, context) }
        v1.get("reservations") { request, context in try await self.listReservations(request, context) }
        v1.get("reservations/:name") { _, context in try await self.showReservation(context) }
        v1.patch("reservations/:name") { request, context in try await self.updateReservation(request, context) }
        v1.delete("reservations/:name") { request, context in try await self.releaseReservation(request, context) }
        v1.get("capacity") { request, _ in try await self.capacity(request) }
        v1.post("jobs") { request, context in try await self.submitJob(request, context) }
        v1.get("jobs") { request, context in try await self.listJobs(request, context) }
        v1.get("jobs/:id") { _, context in try await self.showJob(context) }
        v1.post("jobs/:id/stop") { _, context in try await self.stopJob(context) }
        v1.get("jobs/:id/events") { _, context in try await self.jobEvents(context) }
        v1.get("jobs/:id/log") { request, context in try await self.jobLog(request, context) }
        v1.post("invoke") { request, context in try await self.invoke(request, context) }
        v1.get("usage") { request, context in try await self.usage(request, context) }
        return router
    }

    static func parameter(_ name: String, _ context: BerthRequestContext) throws -> String {
        guard let raw = context.parameters.get(name) else { throw APIError.invalid(field: name, "missing from the path") }
        return raw.removingPercentEncoding ?? raw
    }

    // MARK: Health, units, models

    func health() async throws -> Response {
        let now = clock()
        let view = try await ledger.read { tx -> HealthView in
            let units = try tx.units()
            let dedicated = units.filter { $0.pool == .dedicated }.count
            let leased = try tx.unitHolders().count
            let live = try tx.liveReservations()
            return HealthView(
                status: "ok", version: BerthVersion.current, startedAt: self.startedAt,
                uptimeSeconds: Int(now.timeIntervalSince(self.startedAt)),
                units: .init(dedicated: dedicated, shared: units.count - dedicated, leased: leased, free: dedicated - leased),
                reservations: .init(pending: live.filter { $0.status == .pending }.count, active: live.filter { $0.status == .active }.count),
                ledger: self.ledger.isFull ? .init(full: true, folder: self.ledger.folder) : .init(full: false))
        }
        var answer = view
        answer.confinement = jobs.confinementSupport.description
        return try Requests.json(answer)
    }

    func units(_ context: BerthRequestContext) async throws -> Response {
        let caller = try await caller(context)
        let list = try await ledger.read { tx -> UnitList in
            let holders = try tx.unitHolders()
            let owners = Dictionary(try tx.liveReservations().map { ($0.name, $0.owner) }, uniquingKeysWith: { a, _ in a })
            return UnitList(units: try tx.units().map { unit in
                // Others' reservation names are theirs to see; a unit they hold just shows as taken.
                let holder = holders[unit.id].map { name in caller.canSee(owner: owners[name] ?? "") ? name : "(another user)" }
                return UnitView(id: unit.id, kind: unit.kind, device: unit.device, pool: unit.pool.rawValue, holder: holder, state: jobs.hardware.state(of: unit))
            })
        }
        return try Requests.json(list)
    }

    /// The catalog, with the caller's own custom models (everyone's for an admin).
    func models(_ context: BerthRequestContext) async throws -> Response {
        let caller = try await caller(context)
        let list = try await ledger.read { tx in
            ModelList(models: try tx.models().filter { Self.isVisible($0, to: caller) }.map(Views.model))
        }
        return try Requests.json(list)
    }

    func model(_ context: BerthRequestContext) async throws -> Response {
        let caller = try await caller(context)
        let id = try Self.parameter("id", context)
        guard let model = try await ledger.read({ tx in try tx.model(id: id) }), Self.isVisible(model, to: caller) else {
            throw APIError(.notFound, "no model '\(id)'; `berth models` lists the catalog")
        }
        return try Requests.json(Views.model(model))
    }

    // MARK: Capacity

    func capacity(_ request: Request) async throws -> Response {
        let now = self.now
        let query = request.uri.queryParameters
        func time(_ name: String, default value: Date) throws -> Date {
            guard let text = query[Substring(name)].map(String.init), !text.isEmpty else { return value }
            guard let date = TimeExpression.parse(text, now: now) else {
                throw APIError.invalid(field: name, "'\(text)' is not a time: use now, RFC 3339 (2026-12-01T09:00:00Z) or an offset such as +2h or -7d")
            }
            return date.wholeSeconds
        }
        let from = try time("from", default: now)
        let to = try time("to", default: from.addingTimeInterval(7 * 86_400))
        guard to > from else { throw APIError.invalid(field: "to", "must be after from") }
        guard to.timeIntervalSince(from) <= 10 * 366 * 86_400 else { throw APIError.invalid(field: "to", "the window is limited to 10 years") }
        let view = try await ledger.read { tx -> CapacityView in
            let calendar = try tx.snapshot().calendar
            return CapacityView(from: from, to: to, total: calendar.total,
                                steps: calendar.steps(from: from, to: to).map { FreeStepView(start: $0.start, end: $0.end, free: $0.free) })
        }
        return try Requests.json(view)
    }
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
