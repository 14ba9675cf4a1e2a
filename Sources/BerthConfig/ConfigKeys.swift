/// Every key the config file accepts, table by table: the decoder refuses any other key with
/// these lists, and docs/operating.md is checked against `documentedPaths`, so a key cannot be
/// added without being documented.
public enum ConfigKeys {
    public static let root = ["daemon", "limits", "metrics", "openai", "confinement", "discovery", "units", "models", "runners", "executors"]
    public static let daemon = [
        "socket", "database", "socket_group", "admins", "admin_groups", "stop_grace_seconds",
        "idle_threshold_seconds", "log_directory", "log_level",
    ]
    public static let limits = [
        "max_data_file_bytes", "max_data_records", "max_queued_jobs_per_user", "max_connections",
        "request_timeout_seconds", "idle_timeout_seconds",
    ]
    public static let metrics = ["listen"]
    public static let openai = ["listen"]
    public static let confinement = ["enabled", "memory_per_unit_mib", "max_tasks"]
    public static let discovery = ["gpus", "nvidia_smi", "pool", "sample_seconds", "idle_gpu_percent"]
    public static let units = ["id", "kind", "device", "pool", "cpus", "cpu_share", "uuid", "memory_mib", "executor", "node"]
    /// `[executors]` holds one table per executor that is not this host's.
    public static let executors = ["slurm"]
    public static let slurm = [
        "sbatch", "scancel", "squeue", "sacct", "scontrol", "sinfo", "partition", "account", "shared_folder", "poll_seconds",
    ]
    public static let models = [
        "id", "provider", "input_modalities", "output_modalities", "max_tokens", "on_demand", "customizations",
        "units_per_model_unit", "tokens_per_minute", "hyperparameters", "price",
    ]
    public static let hyperparameters = ["epochs", "batch_size", "learning_rate", "warmup_steps"]
    public static let price = [
        "model_unit_hour", "model_unit_hour_1m", "model_unit_hour_6m", "on_demand_input_per_1k", "on_demand_output_per_1k",
    ]
    public static let runners = ["train", "batch", "serve", "service_user"]

    /// Each accepted leaf key as the manual names it: `daemon.socket`, `models.price.model_unit_hour`.
    /// Tables that only hold other keys (`models.price`) are left out; their keys stand for them.
    public static var documentedPaths: [String] {
        let tables: [(String, [String])] = [
            ("daemon", daemon), ("limits", limits), ("metrics", metrics), ("openai", openai), ("confinement", confinement),
            ("discovery", discovery), ("units", units),
            ("models", models.filter { $0 != "hyperparameters" && $0 != "price" }),
            ("models.hyperparameters", hyperparameters), ("models.price", price), ("runners", runners),
            ("executors.slurm", slurm),
        ]
        return tables.flatMap { table, keys in keys.map { "\(table).\($0)" } }
    }
}
