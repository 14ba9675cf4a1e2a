import Foundation
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

    /// The peer's uid and gid, as the kernel saw them when it connected.
    func peerCredentials() async throws -> (uid: UInt32, gid: UInt32) {
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
