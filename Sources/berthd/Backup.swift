import ArgumentParser
import BerthConfig
import BerthStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `berthd backup --to FILE`: a consistent copy of the ledger, taken while berthd keeps serving.
///
/// It runs with the rights of the ledger's owner, not of whoever started it: started as root,
/// it becomes the ledger file's owner before it opens anything. The copy then belongs to the
/// same user as the ledger, and root's rights are never used to write where that user could
/// not (a destination in a folder someone else controls).
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the live ledger to a new file with SQLite's online backup; berthd keeps serving meanwhile.",
        discussion: """
            The copy holds every change berthd acknowledged before the backup began. FILE must not \
            exist; it is created mode 0600, owned by the ledger's owner (started as root, the command \
            takes that user's identity first, so FILE's folder must be writable by them). To restore: \
            stop berthd, put the copy in place of the ledger with mode 0600 and berthd's user as owner, \
            delete the ledger's -wal and -shm files, and start berthd.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The new file to write the copy to.", valueName: "file"))
    var to: String

    @Option(name: .long, help: "The config file; its daemon.database is the ledger to copy.")
    var config: String = DaemonConfig.defaultPath

    @Option(name: .long, help: "The ledger to copy (overrides the config's daemon.database).")
    var database: String?

    func run() throws {
        let ledger: String
        if let database {
            ledger = Run.absolute(database)
        } else {
            do {
                ledger = try DaemonConfig.load(path: config).daemon.database
            } catch {
                FileHandle.standardError.write(
                    Data("berthd: invalid config \(config):\n\(error)\nname the ledger with --database FILE instead\n".utf8)
                )
                throw ExitCode(2)
            }
        }
        let destination = Run.absolute(to)
        do {
            try Self.becomeOwner(of: ledger)
            let summary = try LedgerBackup.copy(ledgerAt: ledger, to: destination)
            print("backed up \(ledger) to \(summary.path): \(summary.pages) pages, \(summary.bytes) bytes, integrity ok")
        } catch {
            FileHandle.standardError.write(Data("berthd: backup: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// As root, takes the uid and gid of the ledger file's owner (and no supplementary groups).
    static func becomeOwner(of ledger: String) throws(LedgerBackupError) {
        guard geteuid() == 0 else { return }
        var info = stat()
        guard stat(ledger, &info) == 0 else {
            throw LedgerBackupError(
                description:
                    "no ledger at \(ledger): \(String(cString: strerror(errno))); name it with --database, or with --config and its daemon.database"
            )
        }
        guard info.st_uid != 0 else { return }
        guard setgroups(0, nil) == 0, setgid(info.st_gid) == 0, setuid(info.st_uid) == 0 else {
            throw LedgerBackupError(
                description: "cannot take the identity of the ledger's owner (uid \(info.st_uid)): \(String(cString: strerror(errno)))"
            )
        }
    }
}
