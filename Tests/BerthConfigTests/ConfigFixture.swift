import Foundation

@testable import BerthConfig

/// A small valid config (two dedicated units, one shared, one model) that each problem case
/// breaks in exactly one place.
enum ConfigFixture {
    static let units = """
        [[units]]
        id = "cpu-0"
        kind = "cpu"
        device = 0
        pool = "dedicated"

        [[units]]
        id = "cpu-1"
        kind = "cpu"
        device = 1
        pool = "dedicated"

        [[units]]
        id = "cpu-shared-0"
        kind = "cpu"
        pool = "shared"

        """

    static let model = """
        [[models]]
        id = "amazon.titan-text-express-v1"
        provider = "Amazon"
        input_modalities = ["text"]
        output_modalities = ["text"]
        max_tokens = 8192
        on_demand = true
        customizations = ["fine-tuning", "continued-pretraining"]
        units_per_model_unit = 1
        tokens_per_minute = 25000

        [models.hyperparameters]
        epochs = [1, 10]
        batch_size = [1, 64]
        learning_rate = [0.0000001, 0.00001]
        warmup_steps = [0, 250]

        [models.price]
        model_unit_hour = 20.5
        model_unit_hour_1m = 18.4
        model_unit_hour_6m = 14.8
        on_demand_input_per_1k = 0.0002
        on_demand_output_per_1k = 0.0006

        """

    static let runners = """
        [runners]
        train = ["berth-runner", "train", "--spec", "{spec}"]
        batch = ["berth-runner", "batch", "--spec", "{spec}"]
        serve = ["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}"]

        """

    static let valid = config()

    static func config(
        daemon: String = "",
        limits: String = "",
        metrics: String = "",
        units: String = units,
        models: String = model,
        runners: String = runners
    ) -> String {
        [daemon, limits, metrics, units, models, runners].joined(separator: "\n")
    }

    /// The valid config with `old` replaced; `old` must occur, or the case would test nothing.
    static func valid(replacing old: String, with new: String) -> String {
        guard valid.contains(old) else { fatalError("fixture does not contain \(old)") }
        return valid.replacingOccurrences(of: old, with: new)
    }

    /// The problems `parse` reports; empty if it accepts the config.
    static func problems(_ toml: String, sourcePath: String? = nil) -> [ConfigProblem] {
        do {
            _ = try DaemonConfig.parse(toml, sourcePath: sourcePath)
            return []
        } catch {
            return error.problems
        }
    }

    /// The repository's shipped config, found from this file's place in the checkout.
    static let shippedConfigPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // BerthConfigTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("config/berthd.toml").path
}
