import ArgumentParser

struct Batch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a batch-inference job: a completion for every record of the spec's data.",
        discussion: """
            Loads model_dir/model.json, or the built-in base model named by the spec's model. \
            Writes output_dir/output.jsonl, one {"recordId","modelOutput"} line per input record in \
            order; prints progress and usage events on stdout. SIGTERM stops at the next record: \
            no output file and exit status 143.
            """
    )

    @OptionGroup var job: SpecOptions

    func run() throws {
        StopSignal.install()
        try RunnerFailure.reporting {
            try BatchJob(spec: job.load()).run()
        }
    }
}
