import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A ledger file that others could read or write, and what its mode was before berthd took
/// that away.
public struct LooseLedgerFile: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    /// The permission bits it had (e.g. 0o644).
    public var formerMode: UInt32

    public init(path: String, formerMode: UInt32) {
        self.path = path
        self.formerMode = formerMode
    }

    public var description: String { "\(path) was mode \(String(formerMode, radix: 8)); it is now 600" }
}

/// The ledger refused to open because its files cannot be made private.
public struct LedgerFileError: Error, CustomStringConvertible {
    public var description: String
}

/// The ledger holds who reserved what, their jobs' data paths and every call's tokens: only
/// berthd's own user may read it. Its files are created 0600, and a file found looser (by an
/// earlier version, a copy, a restore) is tightened before SQLite opens it.
enum LedgerFileMode {
    static let mode: mode_t = 0o600

    /// Creates the database file 0600 if it is missing, so SQLite, which gives its -wal and
    /// -shm files the database file's mode, never makes anything looser; then takes group and
    /// other permissions off the database and any -wal or -shm file that has them.
    static func secure(_ path: String) throws(LedgerFileError) -> [LooseLedgerFile] {
        let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if created >= 0 {
            close(created)
        } else if errno != EEXIST {
            throw LedgerFileError(
                description: "cannot create the ledger \(path): \(String(cString: strerror(errno))); check that berthd's user can write its folder"
            )
        }
        var tightened: [LooseLedgerFile] = []
        for file in [path, path + "-wal", path + "-shm"] {
            // By descriptor, and never through a link: what is tightened is the file itself.
            let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { continue }  // -wal and -shm exist only while open
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { continue }
            let permissions = UInt32(info.st_mode) & 0o777
            guard permissions & 0o077 != 0 else { continue }
            guard fchmod(fd, mode) == 0 else {
                throw LedgerFileError(
                    description: """
                        the ledger file \(file) is mode \(String(permissions, radix: 8)), so other users could read it, and berthd \
                        cannot change that: \(String(cString: strerror(errno))); run `chmod 600 \(file)` as its owner, or give it to berthd's user
                        """
                )
            }
            tightened.append(LooseLedgerFile(path: file, formerMode: permissions))
        }
        return tightened
    }
}
