import Foundation
import Synchronization
public import Hummingbird
public import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Request context that keeps the connection's channel, so a handler can ask the kernel who
/// is calling (SO_PEERCRED on the UNIX socket).
public struct BerthRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// Bodies over 1 MiB are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }

    /// The peer's uid and gid, as the kernel saw them when it connected: asked once per
    /// connection, since they cannot change while it is open.
    func peerCredentials() async throws -> (uid: UInt32, gid: UInt32) {
        if let known = PeerCredentialCache.shared.lookup(channel) { return known }
        let credentials = try await askKernel()
        PeerCredentialCache.shared.store(credentials, for: channel)
        return credentials
    }

    private func askKernel() async throws -> (uid: UInt32, gid: UInt32) {
        guard let provider = channel as? any SocketOptionProvider else {
            throw APIError(.forbidden, "cannot identify the caller: connect through the daemon's UNIX socket")
        }
        let credentials: PeerCredentials = try await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
        ).get()
        return (credentials.uid, credentials.gid)
    }
}

/// `struct ucred` of <sys/socket.h>, which Glibc's module leaves out without `_GNU_SOURCE`.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Credentials per open connection. Entries hold the channel weakly: an identifier the runtime
/// hands to a new connection after the old one is gone never finds the old caller.
final class PeerCredentialCache: Sendable {
    static let shared = PeerCredentialCache()

    private struct Entry: @unchecked Sendable {
        weak var channel: (any Channel)?
        var credentials: (uid: UInt32, gid: UInt32)
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    func lookup(_ channel: any Channel) -> (uid: UInt32, gid: UInt32)? {
        entries.withLock { entries in
            guard let entry = entries[ObjectIdentifier(channel)], entry.channel === channel else { return nil }
            return entry.credentials
        }
    }

    func store(_ credentials: (uid: UInt32, gid: UInt32), for channel: any Channel) {
        entries.withLock { entries in
            // Forget connections that are gone, now and then, so the map stays small.
            if entries.count > 1024 { entries = entries.filter { $0.value.channel != nil } }
            entries[ObjectIdentifier(channel)] = Entry(channel: channel, credentials: credentials)
        }
    }
}
