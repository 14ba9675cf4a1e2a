import BerthCore
import Foundation
import TOMLKit

/// Maps the checked TOML tables to a `DaemonConfig`. Every section is read even after a
/// problem, with defaults standing in for bad values, so the log ends up with all problems;
/// the caller throws if there is any.
struct ConfigDecoder {
    let log: ProblemLog
    /// Absolute path of the file, if it came from one.
    let sourcePath: String?

    func decode(_ root: TableReader) -> DaemonConfig {
        root.rejectUnknownKeys(ConfigKeys.root)
        let daemon = root.subtable("daemon", .optional).map(decodeDaemon) ?? DaemonConfig.Daemon()
        let limits = root.subtable("limits", .optional).map(decodeLimits) ?? DaemonConfig.Limits()
        let metrics = root.subtable("metrics", .optional).map(decodeMetrics) ?? DaemonConfig.Metrics()
        let confinement = root.subtable("confinement", .optional).map(decodeConfinement) ?? DaemonConfig.Confinement()
        let discovery = root.subtable("discovery", .optional).map(decodeDiscovery) ?? DaemonConfig.Discovery()
        let slurm = decodeExecutors(root)
        let pool = decodeUnits(root, discovering: discovery.gpus != nil, slurm: slurm != nil)
        let models = decodeModels(root, pool: pool)
        let runners = decodeRunners(root)
        var config = DaemonConfig(
            daemon: daemon,
            limits: limits,
            metrics: metrics,
            units: pool.units,
            models: models,
            runners: runners,
            sourcePath: sourcePath
        )
        config.confinement = confinement
        config.discovery = discovery
        config.openAI = root.subtable("openai", .optional).map(decodeOpenAI) ?? DaemonConfig.OpenAI()
        config.slurm = slurm
        return config
    }

    // MARK: - [daemon] and [limits]

    private func decodeDaemon(_ table: TableReader) -> DaemonConfig.Daemon {
        table.rejectUnknownKeys(ConfigKeys.daemon)
        var daemon = DaemonConfig.Daemon()
        if let socket = table.nonEmptyString("socket", .optional, hint: "write the control socket's path, or leave the key out for \(daemon.socket)")
        {
            daemon.socket = resolve(socket)
            checkSocketLength(daemon.socket, at: table.keyPath("socket"))
        }
        if let database = table.nonEmptyString("database", .optional, hint: "write the ledger's path, or leave the key out for \(daemon.database)") {
            daemon.database = resolve(database)
        }
        daemon.socketGroup = table.nonEmptyString("socket_group", .optional, hint: "name a group, or leave the key out")
        daemon.admins = names(table, "admins", what: "a user name")
        daemon.adminGroups = names(table, "admin_groups", what: "a group name")
        if let grace = table.number("stop_grace_seconds", .optional, minimum: 0) {
            daemon.stopGraceSeconds = grace
        }
        if let idle = table.number("idle_threshold_seconds", .optional, minimum: 0, exclusive: true) {
            daemon.idleThresholdSeconds = idle
        }
        if let directory = table.nonEmptyString(
            "log_directory",
            .optional,
            hint: "write the folder for job logs, or leave the key out for \(daemon.logDirectory)"
        ) {
            daemon.logDirectory = resolve(directory)
        }
        if let level = table.string("log_level", .optional) {
            if DaemonConfig.Daemon.logLevels.contains(level) {
                daemon.logLevel = level
            } else {
                log.report(
                    table.keyPath("log_level"),
                    "unknown log level '\(level)'; use one of: \(DaemonConfig.Daemon.logLevels.joined(separator: ", "))"
                )
            }
        }
        return daemon
    }

    private func names(_ table: TableReader, _ key: String, what: String) -> [String] {
        guard let entries = table.stringArray(key, .optional) else { return [] }
        var names: [String] = []
        for entry in entries {
            if entry.value.trimmingCharacters(in: .whitespaces).isEmpty {
                log.report(KeyPathText.element(entry.index, of: table.keyPath(key)), "must not be empty; write \(what)")
            } else {
                names.append(entry.value)
            }
        }
        return names
    }

    private func decodeLimits(_ table: TableReader) -> DaemonConfig.Limits {
        table.rejectUnknownKeys(ConfigKeys.limits)
        typealias Limits = DaemonConfig.Limits
        var limits = Limits()
        if let bytes = table.int("max_data_file_bytes", .optional, minimum: 1) {
            limits.maxDataFileBytes = bytes
        }
        if let records = table.int("max_data_records", .optional, minimum: 1) {
            limits.maxDataRecords = records
        }
        if let jobs = table.int("max_queued_jobs_per_user", .optional, minimum: 1) {
            limits.maxQueuedJobsPerUser = jobs
        }
        if let connections = table.int("max_connections", .optional, minimum: 1) {
            if connections > Limits.maxConnectionsCeiling {
                log.report(
                    table.keyPath("max_connections"),
                    "must be at most \(Limits.maxConnectionsCeiling), found \(connections); each connection holds a file descriptor, so lower it"
                )
            } else {
                limits.maxConnections = connections
            }
        }
        if let seconds = table.number("request_timeout_seconds", .optional, minimum: 0, exclusive: true) {
            if seconds > Limits.requestTimeoutCeiling {
                log.report(
                    table.keyPath("request_timeout_seconds"),
                    "must be at most \(ValueReader.format(Limits.requestTimeoutCeiling)), found \(ValueReader.format(seconds)); a request of at most 1 MiB needs seconds, not hours"
                )
            } else {
                limits.requestTimeoutSeconds = seconds
            }
        }
        if let seconds = table.number("idle_timeout_seconds", .optional, minimum: 0, exclusive: true) {
            if seconds > Limits.idleTimeoutCeiling {
                log.report(
                    table.keyPath("idle_timeout_seconds"),
                    "must be at most \(ValueReader.format(Limits.idleTimeoutCeiling)) (a day), found \(ValueReader.format(seconds)); lower it"
                )
            } else {
                limits.idleTimeoutSeconds = seconds
            }
        }
        return limits
    }

    // MARK: - [metrics]

    private func decodeMetrics(_ table: TableReader) -> DaemonConfig.Metrics {
        table.rejectUnknownKeys(ConfigKeys.metrics)
        var metrics = DaemonConfig.Metrics()
        guard let text = table.string("listen", .optional) else { return metrics }
        if let address = DaemonConfig.ListenAddress(parsing: text) {
            metrics.listen = address
        } else {
            log.report(
                table.keyPath("listen"),
                "'\(text)' is not an IP address and port; write HOST:PORT with a port from 1 to 65535, such as \"127.0.0.1:9464\" or \"[::1]:9464\", or leave the key out to open no port"
            )
        }
        return metrics
    }

    // MARK: - [openai]

    private func decodeOpenAI(_ table: TableReader) -> DaemonConfig.OpenAI {
        table.rejectUnknownKeys(ConfigKeys.openai)
        var openAI = DaemonConfig.OpenAI()
        guard let text = table.string("listen", .optional) else { return openAI }
        if let address = DaemonConfig.ListenAddress(parsing: text) {
            openAI.listen = address
        } else {
            log.report(
                table.keyPath("listen"),
                "'\(text)' is not an IP address and port; write HOST:PORT with a port from 1 to 65535, such as \"127.0.0.1:8400\", or leave the key out to open no port"
            )
        }
        return openAI
    }

    private func decodeConfinement(_ table: TableReader) -> DaemonConfig.Confinement {
        table.rejectUnknownKeys(ConfigKeys.confinement)
        var confinement = DaemonConfig.Confinement()
        if let enabled = table.bool("enabled", .optional) { confinement.enabled = enabled }
        confinement.memoryPerUnitMiB = table.int("memory_per_unit_mib", .optional, minimum: 16)
        if let tasks = table.int("max_tasks", .optional, minimum: 16) { confinement.maxTasks = tasks }
        return confinement
    }

    private func decodeDiscovery(_ table: TableReader) -> DaemonConfig.Discovery {
        table.rejectUnknownKeys(ConfigKeys.discovery)
        typealias Discovery = DaemonConfig.Discovery
        var discovery = Discovery()
        if let gpus = table.string("gpus", .optional) {
            discovery.gpus = Discovery.GPUVendor(rawValue: gpus)
            if discovery.gpus == nil {
                log.report(
                    table.keyPath("gpus"),
                    "unknown GPU vendor '\(gpus)'; use one of: \(Discovery.GPUVendor.allCases.map(\.rawValue).joined(separator: ", ")), or leave the key out to discover none"
                )
            }
        }
        if let path = table.nonEmptyString("nvidia_smi", .optional, hint: "write the path of nvidia-smi, or leave the key out to look it up in PATH")
        {
            discovery.nvidiaSMI = path.contains("/") ? resolve(path) : path
        }
        if let poolName = table.string("pool", .optional) {
            if let pool = UnitPool(rawValue: poolName) {
                discovery.pool = pool
            } else {
                log.report(
                    table.keyPath("pool"),
                    "unknown pool '\(poolName)'; use one of: \(UnitPool.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
        }
        if let seconds = table.number("sample_seconds", .optional, minimum: 0, exclusive: true) {
            discovery.sampleSeconds = seconds
        }
        if let percent = table.number("idle_gpu_percent", .optional, minimum: 0) {
            if percent > 100 {
                log.report(table.keyPath("idle_gpu_percent"), "must be a percentage from 0 to 100, found \(ValueReader.format(percent))")
            } else {
                discovery.idleGPUPercent = percent
            }
        }
        return discovery
    }

    /// Relative paths are taken from the config file's folder, so a config and its data can
    /// move together; without a file they stay as written.
    private func resolve(_ path: String) -> String {
        guard let sourcePath, !path.hasPrefix("/") else { return path }
        let folder = URL(fileURLWithPath: sourcePath).deletingLastPathComponent()
        return folder.appendingPathComponent(path).standardizedFileURL.path
    }

    /// `bind` fails on a path longer than `sun_path`; say so now rather than at startup.
    private func checkSocketLength(_ path: String, at keyPath: String) {
        #if canImport(Darwin)
        let limit = 103
        #else
        let limit = 107
        #endif
        let length = path.utf8.count
        if length > limit {
            log.report(keyPath, "\(path) is \(length) bytes long, and a UNIX socket path can be at most \(limit); choose a shorter path")
        }
    }

    // MARK: - [[units]]

    /// The units that decoded, and what the models' checks need to know about the pools.
    struct Pool {
        var units: [ComputeUnit] = []
        var dedicated = 0
        var shared = 0
        /// False when some unit's pool is unknown: then counting units would blame the
        /// models for a problem that is really the unit's.
        var countsAreKnown = true
    }

    /// With `discovering`, the units berthd finds at start-up join these, so none need be
    /// written and the pools' sizes are not known yet.
    private func decodeUnits(_ root: TableReader, discovering: Bool, slurm: Bool) -> Pool {
        var pool = Pool()
        pool.countsAreKnown = !discovering
        guard root.table["units"] != nil else {
            if !discovering {
                log.report("units", "no compute units; add at least one [[units]] table with id, kind and pool, or [discovery] gpus = \"nvidia\"")
            }
            pool.countsAreKnown = false
            return pool
        }
        guard let tables = root.tableArray("units", .optional) else {
            pool.countsAreKnown = false
            return pool
        }
        let written = root.table["units"]?.array?.count ?? 0
        if written == 0, !discovering {
            log.report("units", "no compute units; add at least one [[units]] table with id, kind and pool, or [discovery] gpus = \"nvidia\"")
        }
        if tables.count != written {
            pool.countsAreKnown = false
        }
        var firstIndex: [String: Int] = [:]
        for (index, table) in tables.enumerated() {
            table.rejectUnknownKeys(ConfigKeys.units)
            var id = table.nonEmptyString("id", .required(add: "id = \"cpu-\(index)\""), hint: "give the unit an id such as \"cpu-\(index)\"")
            if let unitID = id {
                if unitID.contains(where: { $0.isWhitespace || $0 == "," || $0 == "/" }) {
                    log.report(
                        table.keyPath("id"),
                        "'\(unitID)' must not contain whitespace, ',' or '/'; unit ids are listed in BERTH_UNITS and API paths"
                    )
                    id = nil
                } else if let first = firstIndex[unitID] {
                    log.report(table.keyPath("id"), "duplicate unit id '\(unitID)' (first at units[\(first)])")
                    id = nil
                } else {
                    firstIndex[unitID] = index
                }
            }
            let kind = table.nonEmptyString("kind", .required(add: "kind = \"cpu\""), hint: "name the hardware, such as \"cpu\" or \"h200\"")
            let device = table.int("device", .optional, minimum: 0)
            let deviceIsValid = table.table["device"] == nil || device != nil
            let uuid = table.nonEmptyString(
                "uuid",
                .optional,
                hint: "write the GPU's UUID as nvidia-smi -L prints it (GPU-… or MIG-…), or leave the key out"
            )
            let uuidIsValid = table.table["uuid"] == nil || uuid != nil
            if let uuid, uuid.contains(where: { $0.isWhitespace || $0 == "," }) {
                log.report(table.keyPath("uuid"), "'\(uuid)' must not contain whitespace or ','; write one UUID as nvidia-smi -L prints it")
            }
            let memoryMiB = table.int("memory_mib", .optional, minimum: 1)
            let memoryIsValid = table.table["memory_mib"] == nil || memoryMiB != nil
            let cpuShare = table.number("cpu_share", .optional, minimum: 0, exclusive: true)
            let cpuShareIsValid = table.table["cpu_share"] == nil || cpuShare != nil
            let cpus = table.string("cpus", .optional)
            let cpusAreValid = cpus.map(CPUList.isValid) ?? true
            if let cpus, !cpusAreValid {
                log.report(table.keyPath("cpus"), "'\(cpus)' is not a list of CPUs; write numbers and ranges such as \"4-7\" or \"0,2,4-5\"")
            }
            let (node, placementIsValid) = decodePlacement(table, slurm: slurm)
            var unitPool: UnitPool?
            if let poolName = table.string("pool", .required(add: "pool = \"dedicated\" (reservable) or pool = \"shared\" (on-demand)")) {
                unitPool = UnitPool(rawValue: poolName)
                if unitPool == nil {
                    log.report(
                        table.keyPath("pool"),
                        "unknown pool '\(poolName)'; use one of: \(UnitPool.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
            }
            switch unitPool {
            case .dedicated: pool.dedicated += 1
            case .shared: pool.shared += 1
            case nil: pool.countsAreKnown = false
            }
            if let id, let kind, let unitPool, deviceIsValid, cpusAreValid, uuidIsValid, memoryIsValid, cpuShareIsValid, placementIsValid,
                !(uuid?.contains(where: { $0.isWhitespace || $0 == "," }) ?? false)
            {
                pool.units.append(
                    ComputeUnit(
                        id: id,
                        kind: kind,
                        device: device,
                        pool: unitPool,
                        cpus: cpus,
                        uuid: uuid,
                        memoryMiB: memoryMiB,
                        cpuShare: cpuShare,
                        node: node
                    )
                )
            }
        }
        return pool
    }

    /// A unit's `executor` and `node`: a Slurm unit names its node, a unit of this host none.
    private func decodePlacement(_ table: TableReader, slurm: Bool) -> (node: String?, valid: Bool) {
        let executor = table.string("executor", .optional) ?? "local"
        let node = table.nonEmptyString("node", .optional, hint: "write the Slurm node's name as sinfo -N prints it")
        switch executor {
        case "local":
            if node != nil {
                log.report(table.keyPath("node"), "only a unit with executor = \"slurm\" is on a node; add executor = \"slurm\" or remove node")
                return (nil, false)
            }
            return (nil, table.table["node"] == nil)
        case "slurm":
            guard let node else {
                if table.table["node"] == nil {
                    log.report(table.keyPath("node"), "a Slurm unit needs its node; add node = \"gpu-node-1\" (a name sinfo -N prints)")
                }
                return (nil, false)
            }
            if node.contains(where: { $0.isWhitespace || $0 == "," || $0 == "[" || $0 == "=" }) {
                log.report(table.keyPath("node"), "'\(node)' must be one node's name, without whitespace, ',', '[' or '='")
                return (nil, false)
            }
            if !slurm {
                log.report(
                    table.keyPath("executor"),
                    "a Slurm unit needs [executors.slurm] with partition and shared_folder; add that table, or remove executor"
                )
                return (nil, false)
            }
            return (node, true)
        default:
            log.report(table.keyPath("executor"), "unknown executor '\(executor)'; use \"local\" (this host, the default) or \"slurm\"")
            return (nil, false)
        }
    }

    // MARK: - [executors.slurm]

    private func decodeExecutors(_ root: TableReader) -> DaemonConfig.Slurm? {
        guard let executors = root.subtable("executors", .optional) else { return nil }
        executors.rejectUnknownKeys(ConfigKeys.executors)
        guard let table = executors.subtable("slurm", .optional) else { return nil }
        table.rejectUnknownKeys(ConfigKeys.slurm)
        let partition = table.nonEmptyString(
            "partition",
            .required(add: "partition = \"gpu\""),
            hint: "name the partition jobs go to, as sinfo prints it"
        )
        let shared = table.nonEmptyString(
            "shared_folder",
            .required(add: "shared_folder = \"/shared/berth\""),
            hint: "give a folder that berthd's host and every node see at the same path"
        )
        if let shared, !shared.hasPrefix("/") {
            log.report(table.keyPath("shared_folder"), "'\(shared)' must be an absolute path: the nodes see it at the same path as berthd")
        }
        guard let partition, let shared, shared.hasPrefix("/") else { return nil }
        var slurm = DaemonConfig.Slurm(partition: partition, sharedFolder: shared)
        slurm.account = table.nonEmptyString("account", .optional, hint: "name a Slurm account, or leave the key out for the user's default")
        let commands: [(String, WritableKeyPath<DaemonConfig.Slurm, String>)] = [
            ("sbatch", \.sbatch), ("scancel", \.scancel), ("squeue", \.squeue), ("sacct", \.sacct), ("scontrol", \.scontrol), ("sinfo", \.sinfo),
        ]
        for (key, path) in commands {
            if let program = table.nonEmptyString(key, .optional, hint: "write the path of \(key), or leave the key out to look it up in PATH") {
                slurm[keyPath: path] = program.contains("/") ? resolve(program) : program
            }
        }
        if let seconds = table.number("poll_seconds", .optional, minimum: 0.1) { slurm.pollSeconds = seconds }
        return slurm
    }

    // MARK: - [[models]]

    private func decodeModels(_ root: TableReader, pool: Pool) -> [Model] {
        guard root.table["models"] != nil else {
            log.report("models", "no models; add at least one [[models]] table to the catalog")
            return []
        }
        guard let tables = root.tableArray("models", .optional) else { return [] }
        if root.table["models"]?.array?.isEmpty == true {
            log.report("models", "no models; add at least one [[models]] table to the catalog")
        }
        var firstIndex: [String: Int] = [:]
        var models: [Model] = []
        for (index, table) in tables.enumerated() {
            if let model = decodeModel(table, index: index, firstIndex: &firstIndex, pool: pool) {
                models.append(model)
            }
        }
        return models
    }

    private func decodeModel(_ table: TableReader, index: Int, firstIndex: inout [String: Int], pool: Pool) -> Model? {
        table.rejectUnknownKeys(ConfigKeys.models)
        var id = table.nonEmptyString("id", .required(add: "id = \"amazon.nova-micro-v1:0\""), hint: "give the model its catalog id")
        if let modelID = id {
            if modelID.contains(where: { $0.isWhitespace || $0 == "/" }) {
                log.report(
                    table.keyPath("id"),
                    "'\(modelID)' must not contain whitespace or '/'; model ids appear in API paths such as /v1/models/{id}"
                )
                id = nil
            } else if let first = firstIndex[modelID] {
                log.report(table.keyPath("id"), "duplicate model id '\(modelID)' (first at models[\(first)])")
                id = nil
            } else {
                firstIndex[modelID] = index
            }
        }
        let provider = table.nonEmptyString("provider", .required(add: "provider = \"Amazon\""), hint: "name who makes the model")
        let inputs = modalities(table, "input_modalities")
        let outputs = modalities(table, "output_modalities")
        let maxTokens = table.int("max_tokens", .required(add: "max_tokens = 8192 (the context size)"), minimum: 1)
        let onDemand = table.bool("on_demand", .optional)
        let customizations = customizations(table)
        let unitsPerModelUnit = table.int("units_per_model_unit", .required(add: "units_per_model_unit = 1"), minimum: 1)
        let tokensPerMinute = table.int("tokens_per_minute", .required(add: "tokens_per_minute = 10000 (one model unit's throughput)"), minimum: 1)
        let hyperparameters = table.subtable("hyperparameters", .optional).map(decodeHyperparameters)
        let price = decodePrice(table, onDemand: onDemand ?? false)

        if let unitsPerModelUnit, pool.countsAreKnown, unitsPerModelUnit > pool.dedicated {
            log.report(
                table.keyPath("units_per_model_unit"),
                "\(unitsPerModelUnit) exceeds the \(pool.dedicated) dedicated units in the pool; lower it, or add [[units]] with pool = \"dedicated\""
            )
        }
        if onDemand == true, pool.countsAreKnown, pool.shared == 0 {
            log.report(
                table.keyPath("on_demand"),
                "on-demand calls are served on shared units and there are none; add [[units]] with pool = \"shared\", or set on_demand = false"
            )
        }

        guard let id, let provider, let inputs, let outputs, let maxTokens, let customizations,
            let unitsPerModelUnit, let tokensPerMinute, let price,
            table.table["on_demand"] == nil || onDemand != nil,
            table.table["hyperparameters"] == nil || hyperparameters?.isComplete == true
        else { return nil }
        return Model(
            id: id,
            provider: provider,
            inputModalities: inputs,
            outputModalities: outputs,
            maxTokens: maxTokens,
            onDemand: onDemand ?? false,
            customizations: customizations,
            hyperparameters: hyperparameters?.ranges ?? .defaults,
            unitsPerModelUnit: unitsPerModelUnit,
            tokensPerMinute: tokensPerMinute,
            price: price
        )
    }

    private func modalities(_ table: TableReader, _ key: String) -> [Modality]? {
        let allowed = Modality.allCases.map(\.rawValue).joined(separator: ", ")
        guard let entries = table.stringArray(key, .required(add: "\(key) = [\"text\"] (from \(allowed))")) else { return nil }
        if entries.isEmpty, table.table[key]?.array?.isEmpty == true {
            log.report(table.keyPath(key), "must list at least one modality; use \(allowed)")
            return nil
        }
        var modalities: [Modality] = []
        var complete = entries.count == table.table[key]?.array?.count
        for entry in entries {
            if let modality = Modality(rawValue: entry.value) {
                if !modalities.contains(modality) { modalities.append(modality) }
            } else {
                log.report(KeyPathText.element(entry.index, of: table.keyPath(key)), "unknown modality '\(entry.value)'; use one of: \(allowed)")
                complete = false
            }
        }
        return complete ? modalities : nil
    }

    private func customizations(_ table: TableReader) -> [Customization]? {
        let allowed = Customization.allCases.map(\.rawValue).joined(separator: ", ")
        guard table.table["customizations"] != nil else { return [] }
        guard let entries = table.stringArray("customizations", .optional) else { return nil }
        var customizations: [Customization] = []
        var complete = entries.count == table.table["customizations"]?.array?.count
        for entry in entries {
            if let customization = Customization(rawValue: entry.value) {
                if !customizations.contains(customization) { customizations.append(customization) }
            } else {
                log.report(
                    KeyPathText.element(entry.index, of: table.keyPath("customizations")),
                    "unknown customization '\(entry.value)'; use one of: \(allowed)"
                )
                complete = false
            }
        }
        return complete ? customizations : nil
    }

    // MARK: - [models.hyperparameters]

    private struct DecodedRanges {
        var ranges = HyperparameterRanges.defaults
        var isComplete = true
    }

    private func decodeHyperparameters(_ table: TableReader) -> DecodedRanges {
        table.rejectUnknownKeys(ConfigKeys.hyperparameters)
        var decoded = DecodedRanges()
        func take<T>(_ range: ClosedRange<T>??, into keyPath: WritableKeyPath<HyperparameterRanges, ClosedRange<T>>) {
            switch range {
            case .some(.some(let range)): decoded.ranges[keyPath: keyPath] = range
            case .some(.none): decoded.isComplete = false
            case .none: break
            }
        }
        take(intRange(table, "epochs", minimum: 1), into: \.epochs)
        take(intRange(table, "batch_size", minimum: 1), into: \.batchSize)
        take(learningRateRange(table), into: \.learningRate)
        take(intRange(table, "warmup_steps", minimum: 0), into: \.warmupSteps)
        return decoded
    }

    /// `.none` when the key is absent (the default stands), `.some(nil)` when it is unusable.
    private func intRange(_ table: TableReader, _ key: String, minimum: Int) -> ClosedRange<Int>?? {
        guard let bounds = rangeBounds(table, key, of: "integers") else { return .none }
        guard let bounds else { return .some(nil) }
        let path = table.keyPath(key)
        let low = ValueReader.int(bounds.0, at: KeyPathText.element(0, of: path), minimum: minimum, log: log)
        let high = ValueReader.int(bounds.1, at: KeyPathText.element(1, of: path), minimum: minimum, log: log)
        guard let low, let high else { return .some(nil) }
        guard low <= high else {
            log.report(path, "min \(low) is greater than max \(high); write the range as [min, max]")
            return .some(nil)
        }
        return .some(low...high)
    }

    private func learningRateRange(_ table: TableReader) -> ClosedRange<Double>?? {
        let key = "learning_rate"
        guard let bounds = rangeBounds(table, key, of: "numbers") else { return .none }
        guard let bounds else { return .some(nil) }
        let path = table.keyPath(key)
        let low = ValueReader.number(bounds.0, at: KeyPathText.element(0, of: path), minimum: 0, exclusive: true, log: log)
        let high = ValueReader.number(bounds.1, at: KeyPathText.element(1, of: path), minimum: 0, exclusive: true, log: log)
        guard let low, let high else { return .some(nil) }
        guard low <= high else {
            log.report(path, "min \(low) is greater than max \(high); write the range as [min, max]")
            return .some(nil)
        }
        return .some(low...high)
    }

    /// The two elements of `key = [min, max]`: `.none` if absent, `.some(nil)` if not a pair.
    private func rangeBounds(
        _ table: TableReader,
        _ key: String,
        of noun: String
    ) -> ((any TOMLValueConvertible), (any TOMLValueConvertible))?? {
        guard let value = table.value(key, .optional) else { return .none }
        guard let array = value.array else {
            log.report(table.keyPath(key), ValueReader.mismatch(expected: "[min, max], an array of two \(noun)", found: value))
            return .some(nil)
        }
        guard array.count == 2 else {
            log.report(table.keyPath(key), "expected [min, max], an array of two \(noun), found \(array.count) element\(array.count == 1 ? "" : "s")")
            return .some(nil)
        }
        return .some((array[0], array[1]))
    }

    // MARK: - [models.price]

    private func decodePrice(_ model: TableReader, onDemand: Bool) -> ModelPrice? {
        guard model.table["price"] != nil else {
            log.report(
                model.keyPath("price"),
                "missing required table; add [models.price] with model_unit_hour = 20.5 (per model unit and hour, no commitment)"
            )
            return nil
        }
        guard let table = model.subtable("price", .optional) else { return nil }
        table.rejectUnknownKeys(ConfigKeys.price)
        var complete = true
        func price(_ key: String, _ presence: Presence) -> Double? {
            let value = table.number(key, presence, minimum: 0)
            if value == nil, table.table[key] != nil { complete = false }
            return value
        }
        var perHour: [Commitment: Double] = [:]
        perHour[.none] = price("model_unit_hour", .required(add: "model_unit_hour = 20.5 (per model unit and hour, no commitment)"))
        perHour[.oneMonth] = price("model_unit_hour_1m", .optional)
        perHour[.sixMonths] = price("model_unit_hour_6m", .optional)
        let onDemandPresence: (String) -> Presence = { key in
            onDemand ? .required(add: "\(key) = 0.0003; a model with on_demand = true is billed per 1,000 tokens") : .optional
        }
        let input = price("on_demand_input_per_1k", onDemandPresence("on_demand_input_per_1k"))
        let output = price("on_demand_output_per_1k", onDemandPresence("on_demand_output_per_1k"))
        guard complete, perHour[.none] != nil, !onDemand || (input != nil && output != nil) else { return nil }
        return ModelPrice(modelUnitHour: perHour, onDemandInputPer1k: input, onDemandOutputPer1k: output)
    }

    // MARK: - [runners]

    private func decodeRunners(_ root: TableReader) -> DaemonConfig.Runners {
        var runners = DaemonConfig.Runners(train: [], batch: [], serve: [])
        guard root.table["runners"] != nil else {
            log.report(
                "runners",
                "missing required table; add [runners] with train, batch and serve argv lists (berthd runs only the programs named there)"
            )
            return runners
        }
        guard let table = root.subtable("runners", .optional) else { return runners }
        table.rejectUnknownKeys(ConfigKeys.runners)
        runners.train = argv(table, "train", example: #"["berth-runner", "train", "--spec", "{spec}"]"#)
        runners.batch = argv(table, "batch", example: #"["berth-runner", "batch", "--spec", "{spec}"]"#)
        runners.serve = argv(table, "serve", example: #"["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}"]"#)
        if let user = table.string("service_user", .optional) {
            if user.isEmpty || user.contains(where: { $0.isWhitespace || $0 == ":" || $0 == "/" }) {
                log.report(table.keyPath("service_user"), "must be a user name, such as \"berth\"")
            } else {
                runners.serviceUser = user
            }
        }
        return runners
    }

    private func argv(_ table: TableReader, _ key: String, example: String) -> [String] {
        guard let entries = table.stringArray(key, .required(add: "\(key) = \(example)")) else { return [] }
        let path = table.keyPath(key)
        if entries.isEmpty, table.table[key]?.array?.isEmpty == true {
            log.report(path, "must not be empty; give the program and its arguments, such as \(example)")
            return []
        }
        if let first = entries.first, first.index == 0, first.value.trimmingCharacters(in: .whitespaces).isEmpty {
            log.report(KeyPathText.element(0, of: path), "must name the program to run, such as \"berth-runner\"")
        }
        return entries.map(\.value)
    }
}
