import BerthConfig
import BerthCore
import BerthExecutors
import BerthStore
import BerthTestSupport
import BerthWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization

@testable import BerthServer

/// The control socket's router in-process, for the request rules that need no process: an
/// in-memory ledger with the catalog of `TemporaryDaemon.config()`, a clock the test owns,
/// and serve processes that are always ready and never run. Each request is made as a caller
/// the test names, bound as a connection's peer credentials would bind it.
final class RouteTestApp {
    static let root = Caller(uid: 0, gid: 0, user: "root", isAdmin: true)
    static let alice = Caller(uid: 1000, gid: 1000, user: "alice", isAdmin: false)

    let ledger: Ledger
    let clock = TestClock()
    let router: Router<BerthRequestContext>
    /// How many times the routes have woken the serve supervisor.
    let serveWakes = ServeWakes()

    init(config text: String = TemporaryDaemon.config()) throws {
        let config = try DaemonConfig.parse(text)
        let ledger = try Ledger(inMemory: ())
        let testClock = self.clock
        let clock: @Sendable () -> Date = { testClock.now }
        let now = clock()
        try ledger.writeNow { tx in
            let reload = CatalogReload.plan(configured: config.units, current: try tx.units(), holders: try tx.unitHolders())
            try tx.syncCatalog(units: reload.units, models: config.models, now: now)
        }
        let logger = Logger(label: "route-test")
        let settings = JobSettings(
            runners: config.runners,
            limits: config.limits,
            logDirectory: NSTemporaryDirectory() + "berth-route-test-logs",
            stopGrace: .seconds(1)
        )
        let executor = LocalExecutor(runnerFolders: [], ledgerPath: ":memory:")
        let supervisor = JobSupervisor(ledger: ledger, settings: settings, executor: executor, clock: clock, logger: logger) {}
        let serve = try ServeSupervisor(ledger: ledger, settings: settings, executor: executor, clock: clock, logger: logger) {}
        let services = ControlServices(
            ledger: ledger,
            scheduler: Scheduler(ledger: ledger, clock: clock, logger: logger),
            callers: CallerDirectory(admins: [], adminGroups: []),
            clock: clock,
            startedAt: now,
            jobs: settings,
            supervisor: supervisor,
            serve: serve,
            meter: InvocationMeter(ledger: ledger, logger: logger, metrics: DaemonMetrics()),
            metrics: DaemonMetrics()
        )
        self.ledger = ledger
        self.router = buildRouter(services, serve: ReadyServeProcesses(wakes: serveWakes))
    }

    /// Runs `body` with a client of the router.
    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await Application(router: router).test(.router) { client in try await body(client) }
    }
}

extension TestClientProtocol {
    /// A request as `caller`, with a JSON body if given.
    func send(
        _ method: HTTPRequest.Method,
        _ uri: String,
        json: String? = nil,
        as caller: Caller = RouteTestApp.root,
        headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        try await ConnectionCaller.$current.withValue(caller) {
            try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        }
    }
}

extension TestResponse {
    var error: ErrorBody? { try? Wire.decoder().decode(ErrorBody.self, from: Data(buffer: body)) }

    func decoded<T: Decodable>(_ type: T.Type) throws -> T {
        try Wire.decode(T.self, from: Data(buffer: body))
    }
}

/// The time the app's handlers see: it moves only when the test moves it.
final class TestClock: Sendable {
    private let time = Mutex(Fixtures.epoch)

    var now: Date { time.withLock { $0 } }

    func advance(by seconds: TimeInterval) {
        time.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// A count of wake-ups, shared by the serve processes and the test.
final class ServeWakes: Sendable {
    private let count = Mutex(0)

    var value: Int { count.withLock { $0 } }

    func add() { count.withLock { $0 += 1 } }
}

/// Serve processes that are ready at once: the reservations' answers show them so, and no
/// call is made. They count how often they are told to look again.
struct ReadyServeProcesses: ServeProcesses {
    var wakes = ServeWakes()

    func port(for key: ServeSupervisor.Key) async -> Int? { 1 }
    func readyPort(for key: ServeSupervisor.Key) -> Int? { 1 }
    func onDemandPort(model: Model) async -> Int? { nil }
    func wake() { wakes.add() }
    func authorization(for key: ServeSupervisor.Key) -> (String, String) { ("Authorization", "Bearer \(key)") }
}
