import Foundation
import GRDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A write SQLite refused because the ledger's file system had no room (`SQLITE_FULL`). Its
/// transaction was rolled back, so nothing of it was recorded, and the ledger is as it was.
public struct LedgerFullError: Error, Sendable, CustomStringConvertible {
    /// The folder of the database: where room must be made.
    public var folder: String

    public init(folder: String) {
        self.folder = folder
    }

    public var description: String { "the ledger's disk is full: free space on \(folder); nothing was recorded" }
}

/// The two ends of an episode of a full disk, each told once.
public enum LedgerSpaceChange: Sendable {
    /// The first write refused for want of room; `cause` is SQLite's own error.
    case full(LedgerFullError, cause: String)
    /// The first write that changed rows and committed after that, with room on the file
    /// system again.
    case recovered(folder: String)
}

/// Whether the ledger's file system is full, as its writes find it. An episode begins with
/// the first write SQLite refuses with `SQLITE_FULL` and ends with the first write that commits
/// changes while the file system has a free block again. Only the two ends are told, so a full
/// disk is logged once, not once per request that finds it full.
final class LedgerSpace: Sendable {
    let folder: String
    private let full = Atomic<Bool>(false)
    private let changed: @Sendable (LedgerSpaceChange) -> Void

    init(folder: String, changed: @escaping @Sendable (LedgerSpaceChange) -> Void) {
        self.folder = folder
        self.changed = changed
    }

    var isFull: Bool { full.load(ordering: .relaxed) }

    /// What to throw for `error`: a `LedgerFullError` if SQLite had no room (an episode begins
    /// unless one is under way), else `error` itself.
    func refused(_ error: any Error) -> any Error {
        if error is LedgerFullError { return error }
        guard let database = error as? DatabaseError, database.resultCode == .SQLITE_FULL else { return error }
        let refusal = LedgerFullError(folder: folder)
        if full.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            changed(.full(refusal, cause: "\(database)"))
        }
        return refusal
    }

    /// After a write committed. A commit alone does not end an episode: on a full disk a
    /// write still fits in write-ahead-log space that a checkpoint has freed, and the next
    /// one would fail again. So the file system must have room too.
    func committed(changedRows: Bool) {
        guard changedRows, full.load(ordering: .relaxed), hasRoom() else { return }
        if full.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
            changed(.recovered(folder: folder))
        }
    }

    /// Whether the folder's file system has a free block that berthd may use (root may use
    /// the blocks a file system keeps back for it). If it cannot be asked, a commit is taken
    /// at its word.
    private func hasRoom() -> Bool {
        var stats = statvfs()
        guard statvfs(folder, &stats) == 0 else { return true }
        return (geteuid() == 0 ? stats.f_bfree : stats.f_bavail) > 0
    }
}
