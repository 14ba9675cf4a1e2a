import ArgumentParser
import BerthCore
import BerthWire
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// `berth`: the command-line client of berthd. Each subcommand is one request to the control
/// socket; errors are printed as `berth: <code>: <message>` and mapped to SPEC.md's exit codes.
@main
struct Berth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "Reserve dedicated compute for models and see how it is used.",
        discussion: """
            Talks to berthd over its control socket (--socket, else $BERTH_SOCKET, else \
            /run/berth/berthd.sock).

            TIME is RFC 3339, 'now', or an offset from now such as +2h, +1d, -7d.
            DUR is a number with a unit: 90s, 30m, 8h, 2d.
            """,
        version: BerthVersion.current,
        subcommands: [
            Status.self, Units.self, Models.self, Reserve.self, Reservations.self, Update.self, Release.self,
            Capacity.self, Submit.self, Jobs.self, Stop.self, Logs.self, Invoke.self, Compare.self, Usage.self, APIKey.self,
        ]
    )

    /// Declared here and in every subcommand, so the flags go before or after the subcommand's
    /// name: ArgumentParser hands values of a group shared with the parent down to the child.
    @OptionGroup var global: GlobalOptions

    /// ArgumentParser's own `main()` exits 64 on a usage error; SPEC.md says 2, so parse and run here.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as CommandFailure {
            failure.report()
            Glibc.exit(failure.status.rawValue)
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            let commands = configuration.subcommands.map { $0._commandName }
            let unknown = UnknownCommand.message(arguments: Array(CommandLine.arguments.dropFirst()), commands: commands + ["help"])
            CommandFailure.invalidArgument(unknown ?? usageMessage(for: error)).report()
            Glibc.exit(ExitStatus.usage.rawValue)
        }
    }

    /// ArgumentParser's message with where to look for help, on one line.
    private static func usageMessage(for error: any Error) -> String {
        let message = Self.message(for: error).trimmingWhitespace()
        let full = Self.fullMessage(for: error)
        if let hint = full.split(separator: "\n").last(where: { $0.contains("--help") }) {
            let see = hint.trimming { $0.isBlank || $0 == "." }
            return message.trimming { $0 == "." } + "; " + see.lowercasedFirst()
        }
        return message
    }
}

extension String {
    fileprivate func lowercasedFirst() -> String {
        prefix(1).lowercased() + dropFirst()
    }
}
