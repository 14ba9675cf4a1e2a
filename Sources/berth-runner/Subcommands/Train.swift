import ArgumentParser

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a custom model: fine-tuning, continued-pretraining or distillation.",
        discussion: """
            Prints JSON Lines events on stdout (train_loss per step, validation_loss per epoch, \
            progress, usage) and writes model.json and runner.json into the spec's output_dir. \
            SIGTERM stops at the next step: nothing is saved and the exit status is 143.
            """
    )

    @OptionGroup var job: SpecOptions

    func run() throws {
        StopSignal.install()
        try RunnerFailure.reporting {
            try TrainingJob(spec: job.load()).run()
        }
    }
}
