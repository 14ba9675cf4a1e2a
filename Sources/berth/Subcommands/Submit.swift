import ArgumentParser
import BerthCore
import BerthWire
import FoundationEssentials

extension Berth {
    struct Submit: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "submit",
            abstract: "Submit a customization or batch-inference job to a reservation's queue.",
            discussion: """
                Training kinds (fine-tuning, continued-pretraining, distillation) need a training \
                reservation on the base model; batch-inference needs an inference reservation on the \
                model. berthd checks the hyperparameters against the model's ranges and reads the data \
                files (JSON Lines) before the job is queued, so a bad dataset is refused at once with \
                the line and the reason. Relative paths are taken from the current directory.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The job's name: 1 to 63 of a-z, 0-9 and '-'.")
        var name: String

        @Option(help: "The reservation whose units run the job.")
        var reservation: String

        @Option(help: "What the job does.")
        var kind: JobKind

        @Option(help: ArgumentHelp("The training or input records (JSON Lines).", valueName: "file"))
        var data: String

        @Option(help: ArgumentHelp("Records to compute the validation loss on (JSON Lines).", valueName: "file"))
        var validationData: String?

        @Option(help: ArgumentHelp("The folder the job writes its model or output records to.", valueName: "dir"))
        var output: String

        @Option(help: ArgumentHelp("The name of the custom model a training job creates.", valueName: "custom"))
        var modelName: String?

        @Option(help: "Passes over the training data (default: the model's).")
        var epochs: Int?

        @Option(help: "Records per training step (default: the model's).")
        var batchSize: Int?

        @Option(help: ArgumentHelp("The learning rate, such as 0.00005 (default: the model's).", valueName: "x"))
        var learningRate: Double?

        @Option(help: "Steps over which the learning rate ramps up (default: the model's).")
        var warmupSteps: Int?

        @Option(help: "Model units the job runs on (default: all of its reservation's).")
        var units: Int?

        @Option(help: "Its place in the reservation's queue: higher runs first.")
        var priority: Int?

        func validate() throws {
            try ArgumentCheck.reservationName(name, field: "name")
            try ArgumentCheck.reservationName(reservation, field: "--reservation")
            try ArgumentCheck.modelUnits(units)
            for (option, path) in [("--data", data), ("--validation-data", validationData), ("--output", output)] {
                if let path, path.isEmpty { throw ValidationError("\(option): give a path, not an empty string") }
            }
            if let learningRate, !learningRate.isFinite {
                throw ValidationError("--learning-rate: '\(learningRate)' is not a number: give one such as 0.00005")
            }
        }

        func run() throws {
            let request = SubmitJobRequest(
                name: name,
                reservation: reservation,
                kind: kind.rawValue,
                data: Self.absolute(data),
                validationData: validationData.map(Self.absolute),
                output: Self.absolute(output),
                modelName: modelName,
                epochs: epochs,
                batchSize: batchSize,
                learningRate: learningRate,
                warmupSteps: warmupSteps,
                modelUnits: units,
                priority: priority
            )
            let reply = try global.call(
                JobRow.self,
                "POST",
                "/v1/jobs",
                body: try .json(request),
                idempotencyKey: UUID().uuidString.lowercased()
            )
            global.show(reply) { "submitted job \($0.id) '\($0.name)' on '\($0.reservation)': " + Jobs.status($0) }
        }

        /// The path as berthd must read it: berthd's working directory is not the caller's.
        /// Only `.` and empty components are dropped; `..` is left for the kernel, which
        /// resolves it through symbolic links correctly.
        static func absolute(_ path: String) -> String {
            let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            // Appended one by one, each as a String: `joined(separator:)` over substrings, and
            // `+=` of a substring, are not specialized here, and their generic paths cost a
            // conformance lookup each, a scan of the whole binary.
            var absolute = ""
            for component in joined.split(separator: "/") where component != "." {
                absolute += "/"
                absolute += String(component)
            }
            return absolute.isEmpty ? "/" : absolute
        }
    }
}
