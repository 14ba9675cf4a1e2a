import Testing

@testable import BerthConfig

/// One way to get a config wrong, and the problem it must produce.
struct ProblemCase: Sendable, CustomTestStringConvertible {
    var sentence: String
    var toml: String
    var keyPath: String
    /// Part of the message the operator must see.
    var message: String
    /// How many problems the whole config has: one mistake should not cascade into noise.
    var count: Int = 1

    var testDescription: String { sentence }
}

private typealias F = ConfigFixture

private let problemCases: [ProblemCase] = [
    // Unknown keys, at every level.
    ProblemCase(
        sentence: "A misspelt daemon key is reported with the key it probably meant",
        toml: F.config(daemon: "[daemon]\nsokcet = \"/tmp/b.sock\"\n"),
        keyPath: "daemon.sokcet",
        message: "unknown key; did you mean 'socket'?"
    ),
    ProblemCase(
        sentence: "An unknown top-level section is reported",
        toml: F.config(daemon: "[deamon]\nsocket = \"/tmp/b.sock\"\n"),
        keyPath: "deamon",
        message: "unknown key"
    ),
    ProblemCase(
        sentence: "An unknown key in a unit is reported with the unit's index",
        toml: F.valid(replacing: "device = 1\n", with: "device = 1\ngpu = true\n"),
        keyPath: "units[1].gpu",
        message: "unknown key"
    ),
    ProblemCase(
        sentence: "An unknown key in a model's price table is reported",
        toml: F.valid(replacing: "model_unit_hour_6m = 14.8", with: "model_unit_hour_6m = 14.8\nmodel_unit_hour_3m = 16.0"),
        keyPath: "models[0].price.model_unit_hour_3m",
        message: "unknown key; did you mean"
    ),
    ProblemCase(
        sentence: "An unknown hyperparameter is reported",
        toml: F.valid(replacing: "warmup_steps = [0, 250]", with: "warmup_steps = [0, 250]\ndropout = [0, 1]"),
        keyPath: "models[0].hyperparameters.dropout",
        message: "unknown key"
    ),
    ProblemCase(
        sentence: "An unknown runner kind is reported",
        toml: F.config(runners: F.runners + "evaluate = [\"berth-runner\", \"eval\"]\n"),
        keyPath: "runners.evaluate",
        message: "unknown key"
    ),

    // Wrong types.
    ProblemCase(
        sentence: "A device written as a string is a type error",
        toml: F.valid(replacing: "device = 1", with: "device = \"1\""),
        keyPath: "units[1].device",
        message: "expected an integer, found a string"
    ),
    ProblemCase(
        sentence: "A context size written as a string is a type error",
        toml: F.valid(replacing: "max_tokens = 8192", with: "max_tokens = \"8k\""),
        keyPath: "models[0].max_tokens",
        message: "expected an integer, found a string"
    ),
    ProblemCase(
        sentence: "A non-string admin is reported at its index",
        toml: F.config(daemon: "[daemon]\nadmins = [\"root\", 7]\n"),
        keyPath: "daemon.admins[1]",
        message: "expected a string, found an integer"
    ),
    ProblemCase(
        sentence: "on_demand written as a string is a type error",
        toml: F.valid(replacing: "on_demand = true", with: "on_demand = \"yes\""),
        keyPath: "models[0].on_demand",
        message: "expected a boolean"
    ),
    ProblemCase(
        sentence: "Units written as one table instead of an array of tables are reported",
        toml: F.config(units: "[units]\nid = \"cpu-0\"\nkind = \"cpu\"\npool = \"dedicated\"\n"),
        keyPath: "units",
        message: "expected an array of tables ([[units]]), found a table"
    ),
    ProblemCase(
        sentence: "A grace period written as a string is a type error",
        toml: F.config(daemon: "[daemon]\nstop_grace_seconds = \"10s\"\n"),
        keyPath: "daemon.stop_grace_seconds",
        message: "expected a number, found a string"
    ),

    // Missing required keys.
    ProblemCase(
        sentence: "A unit without a kind is reported",
        toml: F.valid(replacing: "kind = \"cpu\"\ndevice = 0\n", with: "device = 0\n"),
        keyPath: "units[0].kind",
        message: "missing required key; add kind ="
    ),
    ProblemCase(
        sentence: "A unit without a pool is reported",
        toml: F.valid(replacing: "device = 1\npool = \"dedicated\"\n", with: "device = 1\n"),
        keyPath: "units[1].pool",
        message: "missing required key"
    ),
    ProblemCase(
        sentence: "A model without a context size is reported",
        toml: F.valid(replacing: "max_tokens = 8192\n", with: ""),
        keyPath: "models[0].max_tokens",
        message: "missing required key"
    ),
    ProblemCase(
        sentence: "A model without a price table is reported",
        toml: F.valid(
            replacing:
                "[models.price]\nmodel_unit_hour = 20.5\nmodel_unit_hour_1m = 18.4\nmodel_unit_hour_6m = 14.8\non_demand_input_per_1k = 0.0002\non_demand_output_per_1k = 0.0006\n",
            with: ""
        ),
        keyPath: "models[0].price",
        message: "add [models.price]"
    ),
    ProblemCase(
        sentence: "An on-demand model without on-demand prices is reported for each one",
        toml: F.valid(replacing: "on_demand_input_per_1k = 0.0002\non_demand_output_per_1k = 0.0006\n", with: ""),
        keyPath: "models[0].price.on_demand_input_per_1k",
        message: "missing required key",
        count: 2
    ),
    ProblemCase(
        sentence: "A config without runners is reported",
        toml: F.config(runners: ""),
        keyPath: "runners",
        message: "add [runners]"
    ),
    ProblemCase(
        sentence: "A config without units is reported",
        toml: F.config(units: ""),
        keyPath: "units",
        message: "no compute units"
    ),
    ProblemCase(
        sentence: "A config without models is reported",
        toml: F.config(models: ""),
        keyPath: "models",
        message: "no models"
    ),

    // Duplicate and empty ids.
    ProblemCase(
        sentence: "A duplicate unit id names where it first appeared",
        toml: F.valid(replacing: "id = \"cpu-shared-0\"", with: "id = \"cpu-0\""),
        keyPath: "units[2].id",
        message: "duplicate unit id 'cpu-0' (first at units[0])"
    ),
    ProblemCase(
        sentence: "A duplicate model id names where it first appeared",
        toml: F.config(models: F.model + F.model),
        keyPath: "models[1].id",
        message: "duplicate model id 'amazon.titan-text-express-v1' (first at models[0])"
    ),
    ProblemCase(
        sentence: "An empty unit id is reported",
        toml: F.valid(replacing: "id = \"cpu-1\"", with: "id = \"\""),
        keyPath: "units[1].id",
        message: "must not be empty"
    ),
    ProblemCase(
        sentence: "An empty model id is reported",
        toml: F.valid(replacing: "id = \"amazon.titan-text-express-v1\"", with: "id = \" \""),
        keyPath: "models[0].id",
        message: "must not be empty"
    ),
    ProblemCase(
        sentence: "A model id with a slash is refused because ids appear in API paths",
        toml: F.valid(replacing: "id = \"amazon.titan-text-express-v1\"", with: "id = \"amazon/titan\""),
        keyPath: "models[0].id",
        message: "must not contain whitespace or '/'"
    ),
    ProblemCase(
        sentence: "An empty admin name is reported at its index",
        toml: F.config(daemon: "[daemon]\nadmins = [\"root\", \"\"]\n"),
        keyPath: "daemon.admins[1]",
        message: "must not be empty"
    ),

    // Numbers out of range.
    ProblemCase(
        sentence: "A zero context size is refused",
        toml: F.valid(replacing: "max_tokens = 8192", with: "max_tokens = 0"),
        keyPath: "models[0].max_tokens",
        message: "must be at least 1, found 0"
    ),
    ProblemCase(
        sentence: "A negative throughput is refused",
        toml: F.valid(replacing: "tokens_per_minute = 25000", with: "tokens_per_minute = -5"),
        keyPath: "models[0].tokens_per_minute",
        message: "must be at least 1, found -5"
    ),
    ProblemCase(
        sentence: "A model unit of zero compute units is refused",
        toml: F.valid(replacing: "units_per_model_unit = 1", with: "units_per_model_unit = 0"),
        keyPath: "models[0].units_per_model_unit",
        message: "must be at least 1, found 0"
    ),
    ProblemCase(
        sentence: "A negative device index is refused",
        toml: F.valid(replacing: "device = 1", with: "device = -1"),
        keyPath: "units[1].device",
        message: "must be at least 0, found -1"
    ),
    ProblemCase(
        sentence: "A negative grace period is refused",
        toml: F.config(daemon: "[daemon]\nstop_grace_seconds = -1\n"),
        keyPath: "daemon.stop_grace_seconds",
        message: "must be at least 0, found -1"
    ),
    ProblemCase(
        sentence: "A zero idle threshold is refused",
        toml: F.config(daemon: "[daemon]\nidle_threshold_seconds = 0\n"),
        keyPath: "daemon.idle_threshold_seconds",
        message: "must be greater than 0"
    ),
    ProblemCase(
        sentence: "A zero record limit is refused",
        toml: F.config(limits: "[limits]\nmax_data_records = 0\n"),
        keyPath: "limits.max_data_records",
        message: "must be at least 1, found 0"
    ),
    ProblemCase(
        sentence: "A zero queued-job cap is refused",
        toml: F.config(limits: "[limits]\nmax_queued_jobs_per_user = 0\n"),
        keyPath: "limits.max_queued_jobs_per_user",
        message: "must be at least 1, found 0"
    ),
    ProblemCase(
        sentence: "A connection cap written as a string is a type error",
        toml: F.config(limits: "[limits]\nmax_connections = \"256\"\n"),
        keyPath: "limits.max_connections",
        message: "expected an integer, found a string"
    ),
    ProblemCase(
        sentence: "A connection cap of zero would lock everyone out and is refused",
        toml: F.config(limits: "[limits]\nmax_connections = 0\n"),
        keyPath: "limits.max_connections",
        message: "must be at least 1, found 0"
    ),
    ProblemCase(
        sentence: "A connection cap above the ceiling is refused with the ceiling",
        toml: F.config(limits: "[limits]\nmax_connections = 1000000\n"),
        keyPath: "limits.max_connections",
        message: "must be at most 65536, found 1000000"
    ),
    ProblemCase(
        sentence: "A zero request timeout is refused",
        toml: F.config(limits: "[limits]\nrequest_timeout_seconds = 0\n"),
        keyPath: "limits.request_timeout_seconds",
        message: "must be greater than 0, found 0"
    ),
    ProblemCase(
        sentence: "A request timeout of hours is refused",
        toml: F.config(limits: "[limits]\nrequest_timeout_seconds = 7200\n"),
        keyPath: "limits.request_timeout_seconds",
        message: "must be at most 3600, found 7200"
    ),
    ProblemCase(
        sentence: "A negative idle timeout is refused",
        toml: F.config(limits: "[limits]\nidle_timeout_seconds = -5\n"),
        keyPath: "limits.idle_timeout_seconds",
        message: "must be greater than 0, found -5"
    ),
    ProblemCase(
        sentence: "A misspelt limit is reported with the key it probably meant",
        toml: F.config(limits: "[limits]\nmax_conections = 10\n"),
        keyPath: "limits.max_conections",
        message: "did you mean 'max_connections'?"
    ),
    ProblemCase(
        sentence: "A metrics address without a port is refused with what to write",
        toml: F.config(metrics: "[metrics]\nlisten = \"127.0.0.1\"\n"),
        keyPath: "metrics.listen",
        message: "'127.0.0.1' is not an IP address and port; write HOST:PORT"
    ),
    ProblemCase(
        sentence: "A metrics address with a host name instead of an IP address is refused",
        toml: F.config(metrics: "[metrics]\nlisten = \"localhost:9464\"\n"),
        keyPath: "metrics.listen",
        message: "such as \"127.0.0.1:9464\""
    ),
    ProblemCase(
        sentence: "A metrics port above 65535 is refused",
        toml: F.config(metrics: "[metrics]\nlisten = \"127.0.0.1:70000\"\n"),
        keyPath: "metrics.listen",
        message: "a port from 1 to 65535"
    ),
    ProblemCase(
        sentence: "A metrics port of 0 is refused: Prometheus needs a port it can be told",
        toml: F.config(metrics: "[metrics]\nlisten = \"127.0.0.1:0\"\n"),
        keyPath: "metrics.listen",
        message: "a port from 1 to 65535"
    ),
    ProblemCase(
        sentence: "An IPv6 metrics address without brackets is refused",
        toml: F.config(metrics: "[metrics]\nlisten = \"::1:9464\"\n"),
        keyPath: "metrics.listen",
        message: "[::1]:9464"
    ),
    ProblemCase(
        sentence: "A metrics address written as a number is a type error",
        toml: F.config(metrics: "[metrics]\nlisten = 9464\n"),
        keyPath: "metrics.listen",
        message: "expected a string, found an integer"
    ),
    ProblemCase(
        sentence: "A misspelt metrics key is reported with the key it probably meant",
        toml: F.config(metrics: "[metrics]\nlistn = \"127.0.0.1:9464\"\n"),
        keyPath: "metrics.listn",
        message: "did you mean 'listen'?"
    ),
    ProblemCase(
        sentence: "A negative price is refused",
        toml: F.valid(replacing: "model_unit_hour_1m = 18.4", with: "model_unit_hour_1m = -18.4"),
        keyPath: "models[0].price.model_unit_hour_1m",
        message: "must be at least 0, found -18.4"
    ),

    // Ranges.
    ProblemCase(
        sentence: "An epochs range with min above max is refused",
        toml: F.valid(replacing: "epochs = [1, 10]", with: "epochs = [10, 1]"),
        keyPath: "models[0].hyperparameters.epochs",
        message: "min 10 is greater than max 1"
    ),
    ProblemCase(
        sentence: "A learning rate range with min above max is refused",
        toml: F.valid(replacing: "learning_rate = [0.0000001, 0.00001]", with: "learning_rate = [0.001, 0.0001]"),
        keyPath: "models[0].hyperparameters.learning_rate",
        message: "is greater than max"
    ),
    ProblemCase(
        sentence: "A range that is not a pair is refused",
        toml: F.valid(replacing: "batch_size = [1, 64]", with: "batch_size = [1, 2, 3]"),
        keyPath: "models[0].hyperparameters.batch_size",
        message: "expected [min, max], an array of two integers, found 3 elements"
    ),
    ProblemCase(
        sentence: "A range bound of the wrong type is reported at its index",
        toml: F.valid(replacing: "warmup_steps = [0, 250]", with: "warmup_steps = [0, \"many\"]"),
        keyPath: "models[0].hyperparameters.warmup_steps[1]",
        message: "expected an integer, found a string"
    ),

    // Values outside their vocabularies.
    ProblemCase(
        sentence: "An unknown modality lists the allowed ones",
        toml: F.valid(replacing: "input_modalities = [\"text\"]", with: "input_modalities = [\"text\", \"audio\"]"),
        keyPath: "models[0].input_modalities[1]",
        message: "unknown modality 'audio'; use one of: text, image, video"
    ),
    ProblemCase(
        sentence: "An empty modality list is refused",
        toml: F.valid(replacing: "output_modalities = [\"text\"]", with: "output_modalities = []"),
        keyPath: "models[0].output_modalities",
        message: "at least one modality"
    ),
    ProblemCase(
        sentence: "An unknown customization lists the allowed ones",
        toml: F.valid(replacing: "customizations = [\"fine-tuning\", \"continued-pretraining\"]", with: "customizations = [\"rlhf\"]"),
        keyPath: "models[0].customizations[0]",
        message: "unknown customization 'rlhf'; use one of: fine-tuning, continued-pretraining, distillation"
    ),
    ProblemCase(
        sentence: "An unknown pool lists the allowed ones",
        toml: F.valid(replacing: "device = 0\npool = \"dedicated\"", with: "device = 0\npool = \"reserved\""),
        keyPath: "units[0].pool",
        message: "unknown pool 'reserved'; use one of: dedicated, shared"
    ),
    ProblemCase(
        sentence: "An unknown log level lists the allowed ones",
        toml: F.config(daemon: "[daemon]\nlog_level = \"verbose\"\n"),
        keyPath: "daemon.log_level",
        message: "use one of: trace, debug, info, notice, warning, error, critical"
    ),

    // Checks across sections.
    ProblemCase(
        sentence: "A model unit larger than the dedicated pool is refused",
        toml: F.valid(replacing: "units_per_model_unit = 1", with: "units_per_model_unit = 16"),
        keyPath: "models[0].units_per_model_unit",
        message: "16 exceeds the 2 dedicated units in the pool"
    ),
    ProblemCase(
        sentence: "An on-demand model with no shared unit to serve it is refused",
        toml: F.valid(replacing: "pool = \"shared\"", with: "pool = \"dedicated\""),
        keyPath: "models[0].on_demand",
        message: "add [[units]] with pool = \"shared\", or set on_demand = false"
    ),

    // Runners.
    ProblemCase(
        sentence: "A service user that cannot be a user name is refused",
        toml: F.config(runners: F.runners + "service_user = \"berth staff\"\n"),
        keyPath: "runners.service_user",
        message: "must be a user name"
    ),
    ProblemCase(
        sentence: "An empty runner argv is refused",
        toml: F.valid(
            replacing: "serve = [\"berth-runner\", \"serve\", \"--model-dir\", \"{model_dir}\", \"--port\", \"{port}\"]",
            with: "serve = []"
        ),
        keyPath: "runners.serve",
        message: "must not be empty"
    ),
    ProblemCase(
        sentence: "A runner argv whose program is empty is refused",
        toml: F.valid(replacing: "train = [\"berth-runner\"", with: "train = [\"\""),
        keyPath: "runners.train[0]",
        message: "must name the program to run"
    ),
    ProblemCase(
        sentence: "A missing runner argv is reported",
        toml: F.valid(replacing: "batch = [\"berth-runner\", \"batch\", \"--spec\", \"{spec}\"]\n", with: ""),
        keyPath: "runners.batch",
        message: "missing required key"
    ),

    // Paths and syntax.
    ProblemCase(
        sentence: "A socket path too long for a UNIX socket is refused",
        toml: F.config(daemon: "[daemon]\nsocket = \"/tmp/\(String(repeating: "s", count: 120)).sock\"\n"),
        keyPath: "daemon.socket",
        message: "choose a shorter path"
    ),
    ProblemCase(
        sentence: "A TOML syntax error is one problem with its line and column",
        toml: "[daemon]\nsocket = \n",
        keyPath: "",
        message: "line 2, column"
    ),

    // GPUs: unit keys and [discovery].
    ProblemCase(
        sentence: "A unit's memory_mib that is not a positive integer is reported",
        toml: F.valid(replacing: "device = 1\n", with: "device = 1\nmemory_mib = 0\n"),
        keyPath: "units[1].memory_mib",
        message: "at least 1"
    ),
    ProblemCase(
        sentence: "A unit's cpu_share of zero is reported: a slice needs some CPU time",
        toml: F.valid(replacing: "device = 1\n", with: "device = 1\ncpu_share = 0\n"),
        keyPath: "units[1].cpu_share",
        message: "must be greater than 0"
    ),
    ProblemCase(
        sentence: "A unit's uuid naming two GPUs is reported",
        toml: F.valid(replacing: "device = 1\n", with: "device = 1\nuuid = \"GPU-a,GPU-b\"\n"),
        keyPath: "units[1].uuid",
        message: "must not contain whitespace or ','"
    ),
    ProblemCase(
        sentence: "An unknown GPU vendor to discover is reported with the ones berthd knows",
        toml: F.config(daemon: "[discovery]\ngpus = \"amd\"\n"),
        keyPath: "discovery.gpus",
        message: "use one of: nvidia"
    ),
    ProblemCase(
        sentence: "An idle GPU threshold over 100 percent is reported",
        toml: F.config(daemon: "[discovery]\ngpus = \"nvidia\"\nidle_gpu_percent = 150\n"),
        keyPath: "discovery.idle_gpu_percent",
        message: "percentage from 0 to 100"
    ),
    ProblemCase(
        sentence: "A misspelt discovery key is reported",
        toml: F.config(daemon: "[discovery]\ngpu = \"nvidia\"\n"),
        keyPath: "discovery.gpu",
        message: "unknown key"
    ),
]

@Test("Each kind of problem is reported with its key path", arguments: problemCases)
func problemIsReported(_ problemCase: ProblemCase) {
    let problems = ConfigFixture.problems(problemCase.toml)
    #expect(
        problems.contains { $0.keyPath == problemCase.keyPath && $0.message.contains(problemCase.message) },
        "got: \(problems.map(\.description))"
    )
    #expect(problems.count == problemCase.count, "got: \(problems.map(\.description))")
}

@Test("The fixture itself is valid, so each case tests only its own mistake")
func fixtureIsValid() throws {
    let config = try DaemonConfig.parse(ConfigFixture.valid)
    #expect(config.units.count == 3)
    #expect(config.models.map(\.id) == ["amazon.titan-text-express-v1"])
}

@Test("A config with three problems reports all three")
func threeProblemsAreAllReported() {
    let toml = ConfigFixture.config(daemon: "[daemon]\nsokcet = \"/tmp/b.sock\"\n")
        .replacingOccurrences(of: "device = 1", with: "device = \"1\"")
        .replacingOccurrences(of: "id = \"cpu-shared-0\"", with: "id = \"cpu-0\"")
    let problems = ConfigFixture.problems(toml)
    #expect(Set(problems.map(\.keyPath)) == ["daemon.sokcet", "units[1].device", "units[2].id"])
    #expect(problems.count == 3)
}

@Test("A problem prints as its key path, a colon and its message")
func problemDescription() {
    let problem = ConfigProblem(keyPath: "units[3].id", message: "duplicate unit id 'cpu-3' (first at units[1])")
    #expect(problem.description == "units[3].id: duplicate unit id 'cpu-3' (first at units[1])")
    #expect(ConfigProblem(keyPath: "", message: "cannot read").description == "cannot read")
    let error = ConfigError(problems: [problem, problem])
    #expect(error.description == "\(problem)\n\(problem)")
}

@Test("A key that is not a bare TOML key is quoted in the key path")
func quotedKeyPath() {
    let problems = ConfigFixture.problems(ConfigFixture.config(daemon: "[daemon]\n\"log level\" = \"info\"\n"))
    #expect(problems.map(\.keyPath) == [#"daemon."log level""#])
}

@Test("Units that are not tables are reported once each, without blaming the models")
func unitsThatAreNotTables() {
    let problems = ConfigFixture.problems(ConfigFixture.config(units: "units = [\"cpu-0\"]\n"))
    #expect(problems.map(\.description) == ["units[0]: expected a table, found a string"])
}
