import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// A backup could not be taken; the message names the path and what to do.
public struct LedgerBackupError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// What a finished backup holds.
public struct LedgerBackupSummary: Sendable {
    public var path: String
    public var bytes: Int64
    public var pages: Int
}

/// A consistent copy of a live ledger, taken with SQLite's online backup API while berthd keeps
/// writing to it.
///
/// The copy is read in one read transaction (the ledger is in WAL mode, so that transaction
/// sees every commit made before it began and none after, and never blocks berthd's writer).
/// berthd answers a change only once it is committed, so every change acknowledged before the
/// backup began is in the copy.
///
/// The destination is never overwritten and never reached through a link: the copy is written
/// into a private (0700) folder made beside the destination, checked, made 0600 (the ledger's
/// own mode: it names every user's work), and then hard-linked to the destination name, which
/// fails if anything, a symbolic link included, already has that name.
public enum LedgerBackup {
    public static func copy(ledgerAt source: String, to destination: String) throws(LedgerBackupError) -> LedgerBackupSummary {
        var info = stat()
        guard stat(source, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw LedgerBackupError(
                description:
                    "no ledger at \(source): \(String(cString: strerror(errno == 0 ? ENOENT : errno))); name it with --database, or with --config and its daemon.database"
            )
        }
        if lstat(destination, &info) == 0 {
            throw LedgerBackupError(
                description: "\(destination) already exists; a backup never replaces a file: choose a new name, or remove it first"
            )
        }
        let folder = (destination as NSString).deletingLastPathComponent.isEmpty ? "." : (destination as NSString).deletingLastPathComponent
        var template = Array("\(folder)/.berth-backup-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LedgerBackupError(
                description: "cannot write into \(folder): \(String(cString: strerror(errno))); choose a folder this user can write"
            )
        }
        let scratch = String(cString: made)
        let copyPath = scratch + "/ledger.db"
        defer {
            for leftover in [copyPath, copyPath + "-journal", copyPath + "-wal", copyPath + "-shm"] { unlink(leftover) }
            rmdir(scratch)
        }
        // Created 0600 before SQLite opens it, so the copy is never readable by others, not even
        // inside the private folder.
        let created = open(copyPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard created >= 0 else {
            throw LedgerBackupError(description: "cannot create \(copyPath): \(String(cString: strerror(errno)))")
        }
        close(created)

        let pages: Int
        do {
            var reading = Configuration()
            // Read-only: a backup must never write to the live ledger, nor leave files of this
            // user's beside it that berthd could not open.
            reading.readonly = true
            reading.busyMode = .timeout(10)
            reading.label = "berth-backup-source"
            let ledger = try DatabaseQueue(path: source, configuration: reading)
            let copy = try DatabaseQueue(path: copyPath)
            var total = 0
            try ledger.backup(to: copy) { progress in total = progress.totalPageCount }
            pages = total
            try ledger.close()
            let verdict = try copy.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            try copy.close()
            guard verdict == ["ok"] else {
                throw LedgerBackupError(
                    description:
                        "the copy of \(source) failed SQLite's integrity check (\(verdict.prefix(3).joined(separator: "; "))); check the ledger itself with sqlite3 \(source) 'PRAGMA integrity_check'"
                )
            }
        } catch let error as LedgerBackupError {
            throw error
        } catch {
            throw LedgerBackupError(
                description:
                    "cannot copy \(source): \(error); check that this user can read the ledger and its -wal and -shm files (run as berthd's user, or as root)"
            )
        }

        let fd = open(copyPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw LedgerBackupError(description: "cannot reopen \(copyPath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        _ = fchmod(fd, 0o600)
        guard fsync(fd) == 0, fstat(fd, &info) == 0 else {
            throw LedgerBackupError(description: "cannot sync \(copyPath): \(String(cString: strerror(errno)))")
        }
        guard link(copyPath, destination) == 0 else {
            let reason =
                errno == EEXIST
                ? "it appeared while the backup ran; choose a new name"
                : String(cString: strerror(errno))
            throw LedgerBackupError(description: "cannot create \(destination): \(reason)")
        }
        let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
        return LedgerBackupSummary(path: destination, bytes: Int64(info.st_size), pages: pages)
    }
}
