import ArgumentParser

/// The reference runner: trains, batch-infers and serves a word n-gram model on the CPU, so the
/// whole berth flow runs anywhere with nothing to download. berthd starts it with argv lists
/// from its config; events go to stdout as JSON Lines, diagnostics to stderr (the job's log).
@main
struct BerthRunner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-runner",
        abstract: "berth's reference runner: a word trigram language model trained and served on the CPU.",
        subcommands: [Train.self, Batch.self, Serve.self]
    )
}
