public import BerthCore

/// The executor of a runner, chosen by where its units are: units on a Slurm node go to
/// Slurm, the others run on this host. A runner on units of both is refused: a reservation
/// is placed on units of one executor.
public struct PlacedExecutor: RunnerExecutor {
    public var local: any RunnerExecutor
    public var slurm: SlurmExecutor?

    public init(local: any RunnerExecutor, slurm: SlurmExecutor?) {
        self.local = local
        self.slurm = slurm
    }

    func executor(for units: [ComputeUnit]) throws -> any RunnerExecutor {
        let onNodes = units.filter { $0.node != nil }
        if onNodes.isEmpty { return local }
        guard onNodes.count == units.count else {
            throw RunnerProcess.SpawnError(
                description:
                    "its units mix this host's (\(units.filter { $0.node == nil }.map(\.id).joined(separator: ","))) and Slurm's (\(onNodes.map(\.id).joined(separator: ","))); one runner runs on one executor's units"
            )
        }
        guard let slurm else {
            throw RunnerProcess.SpawnError(description: "its units are on Slurm nodes and the config has no [executors.slurm]")
        }
        return slurm
    }

    /// Whether a runner on `units` runs on Slurm.
    public func runsOnSlurm(_ units: [ComputeUnit]) -> Bool {
        slurm != nil && !units.isEmpty && units.allSatisfy { $0.node != nil }
    }

    public func start(_ launch: RunnerLaunch) async throws -> any Runner {
        try await executor(for: launch.units).start(launch)
    }

    public func handOverFolder(for launch: RunnerLaunch) throws -> String? {
        try executor(for: launch.units).handOverFolder(for: launch)
    }

    public func reattach(_ launch: RunnerLaunch, reference: String) async throws -> any Runner {
        try await executor(for: launch.units).reattach(launch, reference: reference)
    }
}
