import Foundation
public import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The control socket's request context: who is calling, as the kernel named them when they
/// connected.
public struct BerthRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Nil when the connection carries no peer credentials (not the UNIX socket).
    public let caller: Caller?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = ConnectionCaller.current
    }

    /// Bodies over 1 MiB are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }

    /// The caller, for a handler that acts for one.
    func requireCaller() throws -> Caller {
        guard let caller else {
            throw APIError(.forbidden, "cannot identify the caller: connect through the daemon's UNIX socket")
        }
        return caller
    }

    /// A path parameter, percent-decoded.
    func parameter(_ name: String) throws -> String {
        guard let raw = parameters.get(name) else { throw APIError.invalid(field: name, "missing from the path") }
        return raw.removingPercentEncoding ?? raw
    }
}

/// The caller of the connection whose requests the current task serves.
///
/// Hummingbird builds a request context from the channel and a logger only, synchronously,
/// on the connection's own task. The peer's credentials cannot change while the connection is
/// open, so `CallerIdentifyingChannel` reads them once, when the connection is set up, and
/// binds the caller for the task that serves it; each context reads it from there. Only code
/// in this process can bind it: a client has no say in it. Route tests bind it to stand in for
/// a connection.
public enum ConnectionCaller {
    @TaskLocal public static var current: Caller?
}

/// Wraps a connection's HTTP handling: reads SO_PEERCRED as the connection is set up, on its
/// event loop, and serves its requests with the caller those credentials name.
struct CallerIdentifyingChannel<Inner: ServerChildChannel>: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        var inner: Inner.Value
        var credentials: PeerCredentials?
        var channel: any Channel { inner.channel }
    }

    let inner: Inner
    let callers: CallerDirectory

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let credentials: EventLoopFuture<PeerCredentials?>
        if let provider = channel as? any SocketOptionProvider {
            credentials = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
                .map { Optional($0) }
                .recover { _ in nil }
        } else {
            credentials = channel.eventLoop.makeSucceededFuture(nil)
        }
        return credentials.flatMap { credentials in
            inner.setup(channel: channel, logger: logger).map { Value(inner: $0, credentials: credentials) }
        }
    }

    func handle(value: Value, logger: Logger) async {
        // The names come from the password and group files: looked up here, off the event loop.
        let caller = value.credentials.map { callers.caller(uid: $0.uid, gid: $0.gid) }
        await ConnectionCaller.$current.withValue(caller) {
            await inner.handle(value: value.inner, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with the connection guards, each connection's requests served as its caller.
    static func http1(identifyingCallersWith callers: CallerDirectory, configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            CallerIdentifyingChannel(inner: HTTP1Channel(responder: responder, configuration: configuration), callers: callers)
        }
    }
}

/// `struct ucred` of <sys/socket.h>, which Glibc's module leaves out without `_GNU_SOURCE`.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
