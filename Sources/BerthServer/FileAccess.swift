import CBerthSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// berthd reads data and writes output folders for its callers, so it does so only where the
/// caller could itself: owner, group and mode bits checked against the uid and groups the
/// kernel reported for the connection. Errors name the path, never its contents.
struct FileAccess {
    var uid: UInt32
    var groups: Set<UInt32>

    enum Want { case read, write }

    /// Whether the mode bits of `info` give the caller `bits` (4 read, 2 write, 1 search).
    func allows(_ info: stat, _ bits: UInt32) -> Bool {
        if uid == 0 { return true }
        let mode = UInt32(info.st_mode)
        if info.st_uid == uid { return mode & (bits << 6) == bits << 6 }
        if groups.contains(info.st_gid) { return mode & (bits << 3) == bits << 3 }
        return mode & bits == bits
    }

    static func status(_ path: String) -> stat? {
        var info = stat()
        return stat(path, &info) == 0 ? info : nil
    }

    /// Every folder on the way to `path` must let the caller through. The walk ends at the first
    /// folder that does not exist: the path then names no file, which the caller may be told, as
    /// every folder before it let them through.
    func canTraverse(to path: String) -> Bool {
        // Root searches every folder (as `allows` says): no need to walk the path.
        if uid == 0 { return true }
        var folder = ""
        for component in path.split(separator: "/").dropLast() {
            folder += "/" + component
            guard let info = Self.status(folder) else { return true }
            guard allows(info, 1) else { return false }
        }
        return true
    }

    /// The real path of a data file the caller may read.
    func readableFile(_ path: String, field: String) throws -> String {
        guard path.hasPrefix("/") else { throw APIError.invalid(field: field, "'\(path)' is not an absolute path") }
        guard canTraverse(to: path) else { throw Self.forbidden(path, field: field, "read") }
        guard let resolved = realpath(path, nil) else {
            throw APIError.invalid(field: field, "\(path): no such file; check the path")
        }
        defer { free(resolved) }
        let real = String(cString: resolved)
        // The link's target must be reachable and readable too, or a symlink would be a way in.
        guard canTraverse(to: real), let info = Self.status(real) else { throw Self.forbidden(path, field: field, "read") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw APIError.invalid(field: field, "\(path) is not a regular file")
        }
        guard allows(info, 4) else { throw Self.forbidden(path, field: field, "read") }
        return real
    }

    /// An output folder the caller may write: it exists and is writable, or its nearest
    /// existing parent is.
    func writableFolder(_ path: String, field: String) throws -> String {
        guard path.hasPrefix("/") else { throw APIError.invalid(field: field, "'\(path)' is not an absolute path") }
        // The folder's real path: realpath(3) when it exists (one call; Foundation's
        // standardizingPath looks at each component in turn, a good part of a submission),
        // else Foundation's, which also resolves the part that exists.
        let normalized = Self.realPath(path) ?? (path as NSString).standardizingPath
        var candidate = normalized
        while true {
            if let info = Self.status(candidate) {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw APIError.invalid(field: field, "\(candidate) is not a folder")
                }
                guard canTraverse(to: candidate + "/x"), allows(info, 3) else { throw Self.forbidden(path, field: field, "write") }
                return normalized
            }
            let parent = (candidate as NSString).deletingLastPathComponent
            if parent == candidate || parent.isEmpty { throw Self.forbidden(path, field: field, "write") }
            candidate = parent
        }
    }

    enum Contents {
        case data(Data)
        case tooLarge(bytes: Int)
        case unreadable
    }

    /// A regular file's bytes, if there are at most `limit`, read through one descriptor: the
    /// size is that of the file opened, so a file swapped or grown after it was checked cannot
    /// get past the limit, and a FIFO put in its place does not block the request.
    static func contents(_ path: String, limit: Int) -> Contents {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return .unreadable }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return .unreadable }
        guard Int(info.st_size) <= limit else { return .tooLarge(bytes: Int(info.st_size)) }
        // One byte more than the size, to see a file that grew since.
        var buffer = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var filled = 0
        while true {
            if filled == buffer.count {
                guard buffer.count <= limit else { return .tooLarge(bytes: filled) }
                buffer.append(contentsOf: repeatElement(0, count: min(buffer.count, limit + 1 - buffer.count)))
            }
            let count = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + filled, raw.count - filled) }
            if count < 0 {
                if errno == EINTR { continue }
                return .unreadable
            }
            if count == 0 { break }
            filled += count
        }
        return filled > limit ? .tooLarge(bytes: filled) : .data(Data(buffer[..<filled]))
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func forbidden(_ path: String, field: String, _ verb: String) -> APIError {
        APIError(.forbidden, "\(field): you cannot \(verb) \(path); berthd reads and writes only where you could yourself")
    }
}

/// A job's path opened again at the moment it is used, one component at a time from `/`,
/// following no symbolic link, with the caller's rights checked on each folder passed and on
/// what was opened. For a berthd that is not root, whose runners act with berthd's own rights:
/// a name checked at submission may since have been swapped for a link to berthd's own files.
/// The runner is then given the descriptor, never the name.
struct PathResolver {
    private let oPath = berth_o_path()
    var access: FileAccess
    /// The user the checks are for, in messages.
    var user: String

    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    /// A regular file the caller may read, opened for reading.
    func openFile(_ path: String, field: String) throws(Refusal) -> Int32 {
        let (folder, name, _) = try walk(path, field: field, creating: false)
        defer { close(folder) }
        let fd = openat(folder, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw refusal(field, path, at: folder, name, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw Refusal(description: "\(field): \(path) is no longer a regular file; resubmit the job")
        }
        guard access.allows(info, 4) else {
            close(fd)
            throw Refusal(description: "\(field): \(user) can no longer read \(path); resubmit the job once they can")
        }
        return fd
    }

    /// A folder the caller may use (`bits` of the mode: 3 to write, 5 to read), opened as a
    /// path. With `create`, the folders missing at its end are made, by berthd: a missing
    /// folder has only missing folders below it, so every one that exists has been checked
    /// before anything is made, and a refused path creates nothing.
    func openFolder(_ path: String, field: String, bits: UInt32, create: Bool) throws(Refusal) -> Int32 {
        let (folder, name, parentMade) = try walk(path, field: field, creating: create)
        defer { close(folder) }
        let fd = openat(folder, name, oPath | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0, errno == ENOENT, create {
            // Made now by berthd, in a folder the caller may write: theirs to use.
            return try make(name, in: folder, field: field, path: path, parentMade: parentMade)
        }
        guard fd >= 0 else { throw refusal(field, path, at: folder, name, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, access.allows(info, bits) else {
            close(fd)
            let verb = bits & 2 != 0 ? "write to" : "read"
            throw Refusal(description: "\(field): \(user) can no longer \(verb) \(path); resubmit the job once they can")
        }
        return fd
    }

    /// Makes `name` in `folder` if the caller may write there (or berthd made `folder` for
    /// them a moment ago, on this same path), and opens it.
    private func make(_ name: String, in folder: Int32, field: String, path: String, parentMade: Bool) throws(Refusal) -> Int32 {
        var info = stat()
        guard parentMade || (fstat(folder, &info) == 0 && access.allows(info, 3)) else {
            throw Refusal(description: "\(field): \(user) can no longer write in the folder that holds \(path); resubmit the job once they can")
        }
        guard mkdirat(folder, name, 0o755) == 0 else {
            throw Refusal(description: "\(field): cannot create \(path): \(String(cString: strerror(errno)))")
        }
        let made = openat(folder, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard made >= 0 else { throw refusal(field, path, at: folder, name, errno: errno) }
        // Made a moment ago by berthd, so its mode is berthd's to set (its umask is 077).
        fchmod(made, 0o755)
        return made
    }

    /// Opens every folder above `path`'s last component, checking the caller may pass each.
    /// With `creating`, folders that do not exist yet are made (after the checks above them).
    private func walk(_ path: String, field: String, creating: Bool) throws(Refusal) -> (folder: Int32, name: String, made: Bool) {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard path.hasPrefix("/"), let name = components.last, !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw Refusal(description: "\(field): \(path) is not an absolute, normalized path; resubmit the job")
        }
        var folder = open("/", oPath | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else { throw Refusal(description: "\(field): cannot open /: \(String(cString: strerror(errno)))") }
        var walked = ""
        // Whether `folder` is one berthd made in this walk: its own, made for the caller.
        var made = false
        for component in components.dropLast() {
            var info = stat()
            guard made || (fstat(folder, &info) == 0 && access.allows(info, 1)) else {
                close(folder)
                throw Refusal(description: "\(field): \(user) can no longer reach \(walked.isEmpty ? "/" : walked); resubmit the job once they can")
            }
            walked += "/" + component
            var next = openat(folder, component, oPath | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0, errno == ENOENT, creating {
                do throws(Refusal) {
                    next = try make(component, in: folder, field: field, path: walked, parentMade: made)
                    made = true
                } catch {
                    close(folder)
                    throw error
                }
            }
            guard next >= 0 else {
                let failure = refusal(field, walked, at: folder, component, errno: errno)
                close(folder)
                throw failure
            }
            close(folder)
            folder = next
        }
        var info = stat()
        guard made || (fstat(folder, &info) == 0 && access.allows(info, 1)) else {
            close(folder)
            throw Refusal(description: "\(field): \(user) can no longer reach \(walked.isEmpty ? "/" : walked); resubmit the job once they can")
        }
        return (folder, name, made)
    }

    /// Why `name` in `folder` did not open, in words: a link where a folder or file was, or gone.
    private func refusal(_ field: String, _ path: String, at folder: Int32, _ name: String, errno code: Int32) -> Refusal {
        var info = stat()
        if fstatat(folder, name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            return Refusal(
                description:
                    "\(field): \(path) changed since submission: it is now a symbolic link, which berthd does not follow; resubmit the job with the real path"
            )
        }
        switch code {
        case ENOENT: return Refusal(description: "\(field): \(path) no longer exists; resubmit the job")
        case ENOTDIR: return Refusal(description: "\(field): \(path) changed since submission: it is no longer a folder; resubmit the job")
        default: return Refusal(description: "\(field): cannot open \(path): \(String(cString: strerror(code)))")
        }
    }
}
