public import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix

extension SocketClient {
    /// Sends one request and hands its answer over as it arrives: the status and headers to
    /// `head`, then each piece of the body to `body`, as the peer sends them (a server-sent
    /// event stream is read while it is written). The connection is this exchange's own and is
    /// closed when it returns; when `head` or `body` throws (whoever was reading went away), the
    /// connection is closed at once, which is how an HTTP server learns its client is gone
    /// and stops the work (vLLM, llama.cpp's server and berth-runner all do). Their error is
    /// rethrown as it was; a failure to talk to the peer is a `ClientError`.
    public func stream(
        method: String,
        path: String,
        body: Data? = nil,
        headers: [(String, String)] = [],
        head: (_ status: Int, _ headers: [(String, String)]) async throws -> Void,
        body onBody: (Data) async throws -> Void
    ) async throws {
        let channel = try await connect()
        var requestHead = ControlConnection.requestHead(method: method, path: path, body: body, headers: headers)
        requestHead.headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        /// Marks the errors of the reader's own closures, so they are rethrown as they were.
        struct Reader: Error {
            var error: any Error
        }
        do {
            try await channel.executeThenClose { inbound, outbound in
                var parts: [HTTPClientRequestPart] = [.head(requestHead)]
                if let body, !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
                var answered = false
                for try await part in inbound {
                    switch part {
                    case .head(let received):
                        answered = true
                        do {
                            try await head(Int(received.status.code), received.headers.map { ($0.name, $0.value) })
                        } catch {
                            throw Reader(error: error)
                        }
                    case .body(let chunk):
                        do {
                            try await onBody(Data(chunk.readableBytesView))
                        } catch {
                            throw Reader(error: error)
                        }
                    case .end:
                        return
                    }
                }
                throw ClientError.transport(
                    answered
                        ? "\(socketPath) closed the connection in the middle of its answer to \(method) \(path)"
                        : "\(socketPath) closed the connection before answering \(method) \(path)"
                )
            }
        } catch let reader as Reader {
            throw reader.error
        } catch let error as ClientError {
            throw error
        } catch {
            throw ClientError.transport("the exchange with \(socketPath) failed during \(method) \(path): \(error)")
        }
    }
}
