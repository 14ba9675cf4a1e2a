import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The user a runner runs as: uid, primary group and supplementary groups, as the password and
/// group databases say at the moment it starts (as Slurm does with `initgroups`).
public struct RunnerIdentity: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    /// The user's name, or the uid as a number when it has no password entry.
    public var user: String
    /// The user's home folder; `/` when it has none.
    public var home: String

    public init(uid: UInt32, gid: UInt32, groups: [UInt32], user: String, home: String) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.user = user
        self.home = home
    }

    /// The user with `uid`, in the primary group `gid` (the one the kernel reported for the
    /// connection it submitted on), with the supplementary groups the group database gives it.
    public static func of(uid: UInt32, gid: UInt32) -> RunnerIdentity {
        guard let entry = PasswordEntry(uid: uid) else {
            return RunnerIdentity(uid: uid, gid: gid, groups: [gid], user: String(uid), home: "/")
        }
        return RunnerIdentity(uid: uid, gid: gid, groups: groupList(user: entry.name, gid: gid), user: entry.name, home: entry.home)
    }

    /// The user called `name`, in its own primary group; `nil` if there is no such user.
    public static func named(_ name: String) -> RunnerIdentity? {
        guard let entry = PasswordEntry(name: name) else { return nil }
        return RunnerIdentity(uid: entry.uid, gid: entry.gid, groups: groupList(user: entry.name, gid: entry.gid), user: entry.name, home: entry.home)
    }

    /// berthd's own user: what runners run as when berthd is not root.
    public static var daemon: RunnerIdentity { of(uid: geteuid(), gid: getegid()) }

    /// The environment that names the user, as a login would set it.
    public var environment: [String: String] {
        ["HOME": home, "USER": user, "LOGNAME": user]
    }

    static func groupList(user: String, gid: UInt32) -> [UInt32] {
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(user, gid, &groups, &count)
        }
        var seen = Set<UInt32>()
        return ([gid] + groups.prefix(Int(max(count, 0)))).filter { seen.insert($0).inserted }
    }

    struct PasswordEntry {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var home: String

        init?(uid: UInt32) {
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: 16_384)
            guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
            self.init(pwd)
        }

        init?(name: String) {
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: 16_384)
            guard getpwnam_r(name, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
            self.init(pwd)
        }

        private init?(_ pwd: passwd) {
            guard let name = pwd.pw_name else { return nil }
            self.name = String(cString: name)
            uid = pwd.pw_uid
            gid = pwd.pw_gid
            let dir = pwd.pw_dir.map { String(cString: $0) } ?? ""
            // A home that is not there (nobody's /nonexistent) is no home: `/` instead.
            var info = stat()
            home = !dir.isEmpty && stat(dir, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR ? dir : "/"
        }
    }
}
