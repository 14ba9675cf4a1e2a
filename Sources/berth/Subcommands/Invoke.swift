import ArgumentParser
import BerthCore
import BerthWire
import FoundationEssentials

extension Berth {
    struct Invoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "invoke",
            abstract: "Call a model in real time, through a reservation or on demand.",
            discussion: """
                TARGET is an inference reservation's name (served on its units: provisioned) or a \
                base model id that allows on-demand use (served on the shared pool). A custom model \
                is only served through an inference reservation made for it. A call over the \
                reservation's tokens per minute is refused as throttled (exit 5) with how long to \
                wait, unless the reservation spills over to on-demand. Prints the model's output, \
                then which tier served it, the token counts and the latency. With --stream, the \
                output is printed as the model writes it (--json: each chunk as a line of JSON).

                A call is metered and is never retried: if the connection breaks, check the \
                reservation's invocation counts ('berth reservations NAME --json') before calling again.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A reservation name or a base model id.")
        var target: String

        @Option(parsing: .unconditional, help: ArgumentHelp("The text to send.", valueName: "text"))
        var prompt: String

        @Option(help: "The most tokens to generate (default: 64, or the model's max_tokens if smaller).")
        var maxTokens: Int?

        @Option(
            help: ArgumentHelp(
                "An image to send with the prompt, for models that take images: PNG, JPEG, GIF or WebP, at most 700 KiB.",
                valueName: "file"
            )
        )
        var image: String?

        @Flag(help: "Print the output as the model writes it (through the OpenAI route, streamed), then how it was served.")
        var stream = false

        /// Requests are capped at 1 MiB and base64 makes 3 bytes 4: 700 KiB leaves room for the prompt.
        static let imageLimit = 700 * 1024

        func validate() throws {
            try ArgumentCheck.invocation(target: target, prompt: prompt, maxTokens: maxTokens)
            if let image, image.isEmpty { throw ValidationError("--image: give a path, not an empty string") }
        }

        func run() throws {
            let encoded = try image.map { try Self.readImage($0).base64EncodedString() }
            if stream {
                try InvocationStream(global: global, target: target, prompt: prompt, maxTokens: maxTokens, image: encoded).run()
                return
            }
            let request = InvokeRequest(target: target, prompt: prompt, maxTokens: maxTokens, image: encoded)
            // No Idempotency-Key, so `call` does not retry: a call is metered, and one that
            // reached the model before the connection broke must not run (and cost) twice.
            let reply = try global.call(InvokeResponse.self, "POST", "/v1/invoke", body: try .json(request))
            global.show(reply, human: Self.human)
        }

        /// The output as the model wrote it (without trailing newlines), then how it was served.
        static func human(_ response: InvokeResponse) -> String {
            var output = Substring(response.output)
            while output.last?.isNewline == true { output = output.dropLast() }
            return (output.isEmpty ? "" : output + "\n") + summary(response)
        }

        /// `served by provisioned (reservation 'x', model M): 12 in, 16 out tokens, 3.2 ms`, and
        /// `, cost 0.0042` for a call paid per token.
        static func summary(_ response: InvokeResponse) -> String {
            let tokens = "\(response.inputTokens) in, \(response.outputTokens) out tokens"
            var line = "served by \(tier(response)): \(tokens), \(latency(response.latencyMs))"
            if response.cost != 0 { line += ", cost \(Format.number(response.cost))" }
            return line
        }

        /// `provisioned (reservation 'x', model M)` or `on-demand (model M)`.
        static func tier(_ response: InvokeResponse) -> String {
            let reservation = response.reservation.map { "reservation '\($0)', " } ?? ""
            return "\(response.servedBy) (\(reservation)model \(response.model))"
        }

        static func latency(_ milliseconds: Double) -> String {
            CFormat.string("%.1f ms", milliseconds)
        }

        /// The image's bytes, refused here rather than by berthd when the request would be too large.
        static func readImage(_ path: String) throws(CommandFailure) -> Data {
            let size: Int
            do {
                let attributes = try FileManager.default.attributesOfItem(atPath: path)
                guard attributes[.type] as? FileAttributeType != .typeDirectory else {
                    throw CommandFailure.invalidArgument("--image: '\(path)' is a folder: give an image file")
                }
                size = (attributes[.size] as? any BinaryInteger).map { Int($0) } ?? 0
            } catch let failure as CommandFailure {
                throw failure
            } catch {
                throw .invalidArgument("--image: cannot read '\(path)': \(FileProblem.reason(error))")
            }
            guard size <= imageLimit else {
                throw .invalidArgument(
                    "--image: '\(path)' is \(size) bytes, over the \(imageLimit / 1024) KiB (\(imageLimit) bytes) an image may be "
                        + "(requests are capped at 1 MiB and base64 adds a third): send a smaller or more compressed image"
                )
            }
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                // The file may have grown since it was measured.
                guard data.count <= imageLimit else {
                    throw CommandFailure.invalidArgument(
                        "--image: '\(path)' is over \(imageLimit / 1024) KiB: send a smaller or more compressed image"
                    )
                }
                return data
            } catch let failure as CommandFailure {
                throw failure
            } catch {
                throw .invalidArgument("--image: cannot read '\(path)': \(FileProblem.reason(error))")
            }
        }
    }
}

extension ArgumentCheck {
    /// What `invoke` and `compare` check before calling: the daemon would refuse the same.
    static func invocation(target: String, prompt: String, maxTokens: Int?) throws(ValidationError) {
        if target.isEmpty {
            throw ValidationError("target: give a reservation name or a base model id, not an empty string")
        }
        if prompt.isEmpty { throw ValidationError("--prompt: give the text to send, not an empty string") }
        if let maxTokens, maxTokens < 1 {
            throw ValidationError("--max-tokens: must be at least 1, not \(maxTokens)")
        }
    }
}
