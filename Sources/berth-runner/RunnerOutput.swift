import ArgumentParser
import BerthWire
import Foundation
import Synchronization

/// stdout carries events only, one JSON line each, written in one `write` so berthd reads
/// whole lines as soon as they happen; everything else goes to stderr.
enum RunnerOutput {
    static func emit(_ event: RunnerEvent) {
        try? FileHandle.standardOutput.write(contentsOf: Data((event.line + "\n").utf8))
    }

    static func note(_ message: String) {
        try? FileHandle.standardError.write(contentsOf: Data(("berth-runner: " + message + "\n").utf8))
    }
}

/// A failure the runner reports on stderr before exiting with `exitCode`: 2 for a bad spec or
/// bad data, 1 for anything else.
struct RunnerFailure: Error {
    var message: String
    var exitCode: Int32

    static func invalid(_ message: String) -> RunnerFailure { RunnerFailure(message: message, exitCode: 2) }
    static func failed(_ message: String) -> RunnerFailure { RunnerFailure(message: message, exitCode: 1) }

    /// The exit status of a job stopped by SIGTERM: 128 + 15, as a shell reports it.
    static let stoppedExitCode: Int32 = 143

    /// Runs a subcommand's work, turning failures into a stderr line and an exit status.
    static func reporting(_ work: () throws -> Void) throws {
        do {
            try work()
        } catch let failure as RunnerFailure {
            RunnerOutput.note(failure.message)
            throw ExitCode(failure.exitCode)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            RunnerOutput.note(describe(error))
            throw ExitCode(1)
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field \(Wire.snakeCase(key.stringValue))\(path(context.codingPath))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type\(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return "not valid JSON\(path(context.codingPath)): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.isEmpty ? "" : " at " + codingPath.map { Wire.snakeCase($0.stringValue) }.joined(separator: ".")
    }
}

/// Set by SIGTERM or SIGINT; the train and batch loops look at it between steps. (An atomic
/// store is async-signal-safe; the handler does nothing else.)
let stopRequested = Atomic<Bool>(false)

enum StopSignal {
    static func install() {
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        // A reader that went away must not kill the run halfway through a write.
        signal(SIGPIPE, SIG_IGN)
    }

    static var requested: Bool { stopRequested.load(ordering: .relaxed) }
}
