import BerthTestSupport
import BerthWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// The call endpoint's request rules, against the router in-process: each refusal is made
/// before a serve process is asked.
@Suite("Invocation routes")
struct InvocationRouteTests {
    @Test("a call with max_tokens of 2^63-1 is refused 400 naming max_tokens (it overflowed and crashed berthd)")
    func hugeMaxTokens() async throws {
        try await RouteTestApp().test { client in
            let response = try await client.send(
                .post,
                "/v1/invoke",
                json: #"{"target": "amazon.nova-micro-v1:0", "prompt": "hello", "max_tokens": 9223372036854775807}"#
            )
            #expect(response.status == .badRequest, "\(String(buffer: response.body))")
            #expect(response.error?.error.message.hasPrefix("max_tokens: ") == true, "\(String(buffer: response.body))")
            #expect(try await client.send(.get, "/v1/health").status == .ok)
        }
    }

    static let reservedOnly = """

        [[models]]
        id = "test.reserved-only-v1"
        provider = "Test"
        input_modalities = ["text"]
        output_modalities = ["text"]
        max_tokens = 100
        on_demand = false
        units_per_model_unit = 1
        tokens_per_minute = 6000
        [models.price]
        model_unit_hour = 1.0

        """

    func invoke(
        _ client: any TestClientProtocol,
        _ target: String,
        prompt: String,
        maxTokens: Int? = nil,
        as caller: Caller = RouteTestApp.root
    )
        async throws -> TestResponse
    {
        let body = try Wire.encoder().encode(InvokeRequest(target: target, prompt: prompt, maxTokens: maxTokens))
        return try await client.send(.post, "/v1/invoke", json: String(decoding: body, as: UTF8.self), as: caller)
    }

    func reserve(_ client: any TestClientProtocol, _ name: String, model: String, purpose: String, start: String = "now") async throws {
        let made = try await client.send(
            .post,
            "/v1/reservations",
            json: #"{"name": "\#(name)", "model": "\#(model)", "model_units": 1, "purpose": "\#(purpose)", "start": "\#(start)"}"#
        )
        #expect(made.status == .created, "\(String(buffer: made.body))")
    }

    func invocations(_ client: any TestClientProtocol, _ reservation: String) async throws -> InvocationCountsView? {
        try await client.send(.get, "/v1/reservations/\(reservation)").decoded(ReservationView.self).invocations
    }

    @Test(
        "each refusal of a call says what to do, with the status the CLI exits 4 (or 2 for bad input) on, and is recorded on its reservation without being served"
    )
    func refusals() async throws {
        let bob = Caller(uid: 1001, gid: 1001, user: "bob", isAdmin: false)
        try await RouteTestApp(config: TemporaryDaemon.config(extra: Self.reservedOnly)).test { client in
            func refused(
                _ response: TestResponse,
                exit: BerthWire.ExitStatus,
                code: String,
                saying advice: String,
                sourceLocation: SourceLocation = #_sourceLocation
            ) {
                let body = String(buffer: response.body)
                #expect(ExitStatus(httpStatus: Int(response.status.code)) == exit, "\(body)", sourceLocation: sourceLocation)
                #expect(response.error?.error.code == code, "\(body)", sourceLocation: sourceLocation)
                #expect(response.error?.error.message.contains(advice) == true, "\(body)", sourceLocation: sourceLocation)
            }

            // A base model that is not offered on demand.
            refused(
                try await invoke(client, "test.reserved-only-v1", prompt: "hello"),
                exit: .refused,
                code: "on-demand-not-supported",
                saying: "berth reserve NAME --model test.reserved-only-v1 --units 1 --purpose inference"
            )
            // Reservations that cannot serve: another user's, one for training, one not started yet.
            try await reserve(client, "mine", model: "test.reserved-only-v1", purpose: "inference")
            refused(try await invoke(client, "mine", prompt: "hello", as: bob), exit: .refused, code: "forbidden", saying: "invoke through your own")
            try await reserve(client, "train", model: "amazon.nova-micro-v1:0", purpose: "training")
            refused(try await invoke(client, "train", prompt: "hello"), exit: .refused, code: "invalid-state", saying: "--purpose inference")
            try await reserve(client, "later", model: "amazon.nova-micro-v1:0", purpose: "inference", start: "+1d")
            refused(try await invoke(client, "later", prompt: "hello"), exit: .refused, code: "invalid-state", saying: "is pending")
            // Too long for the model: max_tokens alone, or with the prompt.
            refused(
                try await invoke(client, "mine", prompt: "hello", maxTokens: 101),
                exit: .usage,
                code: "invalid-argument",
                saying: "over test.reserved-only-v1's max_tokens of 100"
            )
            let long = Array(repeating: "word", count: 95).joined(separator: " ")
            refused(
                try await invoke(client, "mine", prompt: long, maxTokens: 10),
                exit: .usage,
                code: "invalid-argument",
                saying: "95 prompt tokens + max_tokens 10"
            )

            // The reservation's own refusals are on its ledger, none of them served; another
            // user's refused call is not.
            let counts = try await invocations(client, "mine")
            #expect(counts?.calls == 2, "\(String(describing: counts))")
            #expect(counts?.served == 0, "\(String(describing: counts))")
            #expect((try await invocations(client, "train")?.served ?? 0) == 0)
        }
    }

    @Test("an image to a text-only model is refused with unsupported-modality (the CLI's exit 4), and nothing is served")
    func imageToTextModel() async throws {
        try await RouteTestApp().test { client in
            try await reserve(client, "text", model: "amazon.nova-micro-v1:0", purpose: "inference")
            let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]).base64EncodedString()
            let body = try Wire.encoder().encode(InvokeRequest(target: "text", prompt: "describe this", image: png))
            let refused = try await client.send(.post, "/v1/invoke", json: String(decoding: body, as: UTF8.self))
            #expect(ExitStatus(httpStatus: Int(refused.status.code)) == .refused, "\(String(buffer: refused.body))")
            #expect(refused.error?.error.code == "unsupported-modality", "\(String(buffer: refused.body))")
            #expect(try await invocations(client, "text")?.served == 0)
        }
    }
}
