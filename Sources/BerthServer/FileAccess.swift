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
