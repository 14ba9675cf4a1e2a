import BerthConfig
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Who is on the other end of the socket, from SO_PEERCRED: owners are user names.
public struct Caller: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var user: String
    public var isAdmin: Bool
    /// Primary and supplementary groups, for file access checks.
    public var groups: Set<UInt32>

    public init(uid: UInt32, gid: UInt32, user: String, isAdmin: Bool, groups: Set<UInt32> = []) {
        self.uid = uid
        self.gid = gid
        self.user = user
        self.isAdmin = isAdmin
        self.groups = groups.union([gid])
    }

    public func canSee(owner: String) -> Bool { isAdmin || owner == user }
}

/// Turns peer credentials into callers: user name from the password database, admin from the
/// config's users and groups (root always is). Answers are cached per uid and gid, since every
/// request asks and the databases are files.
public final class CallerDirectory: Sendable {
    private let admins: Set<String>
    private let adminGroups: [String]
    private let cache = Mutex<[UInt64: Caller]>([:])

    public init(admins: [String], adminGroups: [String]) {
        self.admins = Set(admins)
        self.adminGroups = adminGroups
    }

    public func caller(uid: UInt32, gid: UInt32) -> Caller {
        let key = UInt64(uid) << 32 | UInt64(gid)
        if let known = cache.withLock({ $0[key] }) { return known }
        let user = Self.userName(uid: uid) ?? String(uid)
        let groups = Self.groupIDs(user: user, gid: gid)
        let admin =
            uid == 0 || admins.contains(user)
            || adminGroups.contains { name in Self.groupID(name: name).map(groups.contains) ?? false }
        let caller = Caller(uid: uid, gid: gid, user: user, isAdmin: admin, groups: groups)
        cache.withLock { $0[key] = caller }
        return caller
    }

    static func userName(uid: UInt32) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil, let name = pwd.pw_name else { return nil }
        return String(cString: name)
    }

    static func groupID(name: String) -> UInt32? {
        var grp = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &grp, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return grp.gr_gid
    }

    /// The primary and supplementary groups of a user (the peer's own gid included).
    static func groupIDs(user: String, gid: UInt32) -> Set<UInt32> {
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(user, gid, &groups, &count)
        }
        return Set(groups.prefix(Int(max(count, 0)))).union([gid])
    }
}
