import BerthClient
import BerthCore
import BerthDataset
import BerthStore
import BerthWire
import Foundation
import Hummingbird
import Synchronization

/// Each inference reservation's token bucket, in memory: a restart starts it full, which errs
/// toward the customer. A lock, not an actor: every call passes here.
final class ThroughputLimiter: Sendable {
    private let buckets = Mutex<[Int64: TokenBucket]>([:])

    func take(_ amount: Int, reservation: Int64, budget: Int, now: Date) -> TokenBucket.Decision {
        buckets.withLock { buckets in
            if buckets[reservation]?.capacity != Double(budget) {
                buckets[reservation] = TokenBucket(tokensPerMinute: budget, now: now)
            }
            return buckets[reservation]!.take(amount, now: now)
        }
    }

    func reconcile(reservation: Int64, charged: Int, used: Int, now: Date) {
        buckets.withLock { $0[reservation]?.reconcile(charged: charged, used: used, now: now) }
    }
}

/// Where targets went, for a second: a call should not cost a ledger read. Any change through
/// the API clears it, and an entry lives at most `lifetime`, so a reservation the scheduler
/// ended stops being served within a second (its serve process is gone by then anyway).
final class RouteCache: Sendable {
    private let entries = Mutex<[String: (route: Invocations.Route, until: ContinuousClock.Instant)]>([:])
    private let lifetime: Duration = .seconds(1)

    func route(_ key: String) -> Invocations.Route? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if entry.until < .now {
                entries[key] = nil
                return nil
            }
            return entry.route
        }
    }

    func store(_ route: Invocations.Route, for key: String) {
        entries.withLock { $0[key] = (route, .now + lifetime) }
    }

    func clear() {
        entries.withLock { $0.removeAll() }
    }
}

/// `POST /v1/invoke`: berth's own call, through `Invocations` as every route's calls go.
struct InvocationsController: Sendable {
    let calls: Invocations

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.post("invoke") { request, context in try await invoke(request, context) }
    }

    func invoke(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let caller = try context.requireCaller()
        let body = try await Requests.body(request, context: context)
        let input = try Requests.decode(InvokeRequest.self, from: body)
        guard !input.prompt.isEmpty else { throw APIError.invalid(field: "prompt", "is empty; give the text to complete") }

        // An image is checked once the model is known to take images at all.
        var imageURL: String?
        var imageProblem: APIError?
        if let image = input.image {
            if let bytes = Data(base64Encoded: image) {
                if let format = ImageFormat(bytes: bytes) {
                    imageURL = "data:\(format.mediaType);base64,\(image)"
                } else {
                    imageProblem = APIError.invalid(field: "image", "is not a PNG, JPEG, GIF or WebP image; send one of those")
                }
            } else {
                imageProblem = APIError.invalid(field: "image", "is not base64")
            }
        }
        let call = try await calls.admit(
            Invocations.Ask(
                caller: caller,
                target: input.target,
                promptTokens: DatasetCheck.tokenCount(input.prompt),
                maxTokens: input.maxTokens,
                images: input.image == nil ? 0 : 1,
                inputProblem: imageProblem,
                started: started
            )
        )
        let completion: (text: String, finish: String?, input: Int, output: Int)
        do {
            completion = try await complete(
                port: call.port,
                authorization: call.authorization,
                model: call.model.id,
                prompt: input.prompt,
                maxTokens: call.maxTokens,
                imageURL: imageURL
            )
        } catch {
            throw await calls.fail(call, error)
        }
        // Group commit: the call is answered once its record is in the ledger, with others'.
        let settled = try await calls.settle(call, inputTokens: completion.input, outputTokens: completion.output)
        return try Requests.json(
            InvokeResponse(
                target: input.target,
                reservation: call.reservation?.name,
                model: call.model.id,
                servedBy: call.tier.rawValue,
                output: completion.text,
                finishReason: completion.finish,
                inputTokens: completion.input,
                outputTokens: completion.output,
                latencyMs: settled.latencyMs,
                cost: settled.cost
            )
        )
    }

    /// `POST /v1/completions` to a serve process, in the OpenAI shape that vLLM, llama.cpp's
    /// server and TGI share; a call with an image goes to `POST /v1/chat/completions` instead,
    /// the image as a `data:` URL in the user's message, the one shape in which those servers
    /// all take images.
    func complete(
        port: Int,
        authorization: (String, String),
        model: String,
        prompt: String,
        maxTokens: Int,
        imageURL: String?
    )
        async throws -> (text: String, finish: String?, input: Int, output: Int)
    {
        let path: String
        let body: Data
        if let imageURL {
            path = "/v1/chat/completions"
            body = try JSONEncoder().encode(
                ChatCompletionRequestBody(
                    model: model,
                    messages: [.init(content: [.text(prompt), .image(url: imageURL)])],
                    maxTokens: maxTokens
                )
            )
        } else {
            path = "/v1/completions"
            body = try JSONEncoder().encode(CompletionRequestBody(model: model, prompt: prompt, maxTokens: maxTokens))
        }
        let response: BerthClient.Response
        do {
            response = try await calls.serveClient.send(
                port: port,
                method: "POST",
                path: path,
                body: body,
                headers: [("Content-Type", "application/json"), authorization]
            )
        } catch {
            calls.serveClient.forget(port: port)
            throw error
        }
        guard response.status == 200 else {
            throw APIError(.internal, "serve process answered \(response.status) to \(path)")
        }
        let text: String
        let finish: String?
        let usage: CompletionUsage?
        if imageURL != nil {
            let answer = try JSONDecoder().decode(ChatCompletionResponse.self, from: response.body)
            (text, finish, usage) = (answer.choices.first?.message.content ?? "", answer.choices.first?.finishReason, answer.usage)
        } else {
            let answer = try JSONDecoder().decode(CompletionResponse.self, from: response.body)
            (text, finish, usage) = (answer.choices.first?.text ?? "", answer.choices.first?.finishReason, answer.usage)
        }
        return (text, finish, usage?.promptTokens ?? DatasetCheck.tokenCount(prompt), usage?.completionTokens ?? DatasetCheck.tokenCount(text))
    }
}
