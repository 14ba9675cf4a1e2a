public import BerthConfig
public import BerthCore
public import BerthStore
import Dispatch
public import Foundation
public import Logging
import NIOPosix
public import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// What a reload does to the catalog's units: the config's units, except that a unit holding a
/// lease is never dropped (nor moved out of the dedicated pool) while it is held.
public struct CatalogReload: Sendable, Equatable {
    /// A held unit kept although the new config drops it or changes its pool.
    public struct KeptUnit: Sendable, Equatable {
        public var unit: String
        /// The reservation that holds it.
        public var holder: String
        /// Why the config's version was not taken.
        public var reason: Reason

        public init(unit: String, holder: String, reason: Reason) {
            self.unit = unit
            self.holder = holder
            self.reason = reason
        }

        public enum Reason: Sendable {
            /// The config leaves it out.
            case dropped
            /// The config moves it to the shared pool.
            case poolChanged
        }
    }

    /// The units to give `syncCatalog`, in order: the config's, then held units it dropped.
    public var units: [ComputeUnit]
    public var kept: [KeptUnit]
    /// Units the catalog gains and loses.
    public var added: [String]
    public var removed: [String]

    /// - Parameters:
    ///   - configured: the new config's units.
    ///   - current: the catalog's units now (not retired).
    ///   - holders: unit id → the reservation holding it now.
    public static func plan(configured: [ComputeUnit], current: [ComputeUnit], holders: [String: String]) -> CatalogReload {
        let currentByID = Dictionary(current.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var units: [ComputeUnit] = []
        var kept: [KeptUnit] = []
        for unit in configured {
            if let holder = holders[unit.id], let now = currentByID[unit.id], now.pool != unit.pool {
                units.append(now)
                kept.append(KeptUnit(unit: unit.id, holder: holder, reason: .poolChanged))
            } else {
                units.append(unit)
            }
        }
        let configuredIDs = Set(configured.map(\.id))
        for unit in current where !configuredIDs.contains(unit.id) {
            if let holder = holders[unit.id] {
                units.append(unit)
                kept.append(KeptUnit(unit: unit.id, holder: holder, reason: .dropped))
            }
        }
        let finalIDs = Set(units.map(\.id))
        return CatalogReload(
            units: units,
            kept: kept,
            added: units.map(\.id).filter { currentByID[$0] == nil },
            removed: current.map(\.id).filter { !finalIDs.contains($0) }
        )
    }
}

/// Reloads units and models from the config file on SIGHUP (`systemctl reload berthd`).
///
/// The new file is parsed and checked as at startup; if it has problems they are logged and
/// the running catalog stays as it is. Otherwise the catalog is brought up to it and a
/// scheduling cycle runs, in one ledger transaction, and the scheduler is woken. Only
/// `[[units]]` and `[[models]]` are reloaded; the other sections need a restart.
public final class ConfigReloader: Service, Sendable {
    private let configPath: String?
    private let ledger: Ledger
    private let scheduler: Scheduler
    private let systemd: SystemdLink?
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let hangups: HangupSignals
    /// The units as the runners' confinement reads them, replaced on each reload.
    private let hardware: UnitDirectory?

    /// Starts catching SIGHUP at once (its default action would end the process), before the
    /// service runs.
    public init(
        config: DaemonConfig,
        ledger: Ledger,
        scheduler: Scheduler,
        systemd: SystemdLink?,
        clock: @escaping @Sendable () -> Date,
        logger: Logger,
        hardware: UnitDirectory? = nil
    ) async {
        self.configPath = config.sourcePath
        self.hardware = hardware
        self.ledger = ledger
        self.scheduler = scheduler
        self.systemd = systemd
        self.clock = clock
        self.logger = logger
        self.hangups = await HangupSignals()
    }

    public func run() async throws {
        for await _ in hangups.stream.cancelOnGracefulShutdown() {
            await reload()
        }
    }

    /// One reload, bracketed by `RELOADING=1` and `READY=1`; never throws: a failed reload
    /// leaves the daemon as it was.
    public func reload() async {
        systemd?.reloading()
        await apply()
        await systemd?.reloaded()
    }

    private func apply() async {
        guard let configPath else {
            logger.warning("SIGHUP: berthd was not started from a config file; nothing to reload")
            return
        }
        logger.info("SIGHUP: reloading units and models", metadata: ["config": "\(configPath)"])
        let loaded: DaemonConfig
        do {
            loaded = try DaemonConfig.load(path: configPath)
        } catch {
            // One line per problem: a journal entry each, all at error priority.
            logger.error(
                "config reload refused, still running on the previous config; fix \(configPath) (`berthd check-config --config \(configPath)` lists the problems) and reload again",
                metadata: ["problems": "\(error.problems.count)"]
            )
            for problem in error.problems {
                logger.error("config problem: \(problem)")
            }
            return
        }
        // Discovery runs again: a GPU gone from the driver's list leaves the catalog, unless a
        // lease holds it, and then `berth units` shows it lost.
        var fresh = loaded
        let logger = self.logger
        // nvidia-smi blocks, so it runs on NIO's thread pool, never the cooperative pool.
        if loaded.discovery.gpus != nil {
            fresh.units = (try? await NIOThreadPool.singleton.runIfActive { GPUInventory.units(for: loaded, logger: logger) }) ?? loaded.units
        }
        let now = clock()
        do {
            ledger.setUnitExecutors(SlurmSetup.unitExecutors(fresh.units))
            let outcome = try await ledger.write { [fresh] tx in
                let reload = CatalogReload.plan(configured: fresh.units, current: try tx.units(), holders: try tx.unitHolders())
                let liveModels = Set(try tx.liveReservations().map(\.model))
                let modelsBefore = Set(try tx.models().filter { !$0.isCustom }.map(\.id))
                try tx.syncCatalog(units: reload.units, models: fresh.models, now: now)
                _ = try Scheduler.cycle(tx, now: now)
                let modelsAfter = Set(fresh.models.map(\.id))
                return (reload, modelsBefore, modelsAfter, liveModels)
            }
            let (reload, modelsBefore, modelsAfter, liveModels) = outcome
            hardware?.replace(with: fresh.units)
            for kept in reload.kept {
                logger.warning(
                    "unit kept although the config \(kept.reason == .dropped ? "drops it" : "moves it to another pool"): reservation '\(kept.holder)' holds it; it leaves when the lease ends and the config is reloaded again",
                    metadata: ["unit": "\(kept.unit)", "reservation": "\(kept.holder)"]
                )
            }
            for model in modelsBefore.subtracting(modelsAfter).sorted() where liveModels.contains(model) {
                logger.warning(
                    "model dropped from the config still has live reservations; they keep their units, new reservations for it are refused",
                    metadata: ["model": "\(model)"]
                )
            }
            logger.info(
                "config reloaded",
                metadata: [
                    "units": "\(reload.units.count)", "units_added": "\(reload.added.joined(separator: ","))",
                    "units_removed": "\(reload.removed.joined(separator: ","))",
                    "models_added": "\(modelsAfter.subtracting(modelsBefore).sorted().joined(separator: ","))",
                    "models_removed": "\(modelsBefore.subtracting(modelsAfter).sorted().joined(separator: ","))",
                ]
            )
        } catch {
            logger.error("config reload failed in the ledger; nothing changed", metadata: ["error": "\(error)"])
            return
        }
        scheduler.wake()
    }
}

/// SIGHUP as an async sequence, through a Dispatch signal source (what ServiceLifecycle's
/// `UnixSignalsSequence` does too). Once made, SIGHUP no longer ends the process.
final class HangupSignals: @unchecked Sendable {
    let stream: AsyncStream<Void>
    private let source: any DispatchSourceSignal

    init() async {
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "berthd.sighup"))
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        source.setEventHandler { continuation.yield() }
        source.setCancelHandler { continuation.finish() }
        // Wait until the source is registered, so a SIGHUP right after this cannot be lost.
        await withCheckedContinuation { (registered: CheckedContinuation<Void, Never>) in
            source.setRegistrationHandler { registered.resume() }
            source.resume()
        }
        self.stream = stream
        self.source = source
    }

    deinit {
        source.cancel()
    }
}
