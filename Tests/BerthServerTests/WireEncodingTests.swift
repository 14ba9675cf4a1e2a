import BerthWire
import Foundation
import Testing

/// Answers whose types write their own snake_case keys (`SnakeCaseEncodable`) must come out
/// byte for byte as the converting encoder writes them, every field included; and every
/// answer decodes back to what was encoded.
@Suite("Answers encoded with their own keys")
struct WireEncodingTests {
    static let job = JobView(
        id: 7,
        name: "tune",
        owner: "alice",
        kind: "fine-tuning",
        reservation: "train",
        model: "m",
        status: "failed",
        reason: "exit status 3",
        progress: 0.5,
        priority: 2,
        modelUnits: 1,
        units: ["cpu-0", "cpu-1"],
        hyperparameters: Hyperparameters(epochs: 2, batchSize: 8, learningRate: 0.00001, warmupSteps: 1),
        data: "/d/train.jsonl",
        validationData: "/d/val.jsonl",
        output: "/o",
        modelName: "mine",
        submittedAt: Date(timeIntervalSince1970: 1_700_000_000),
        startedAt: Date(timeIntervalSince1970: 1_700_000_001),
        endedAt: Date(timeIntervalSince1970: 1_700_000_060),
        exitStatus: 3,
        busyUnitSeconds: 118,
        inputTokens: 10,
        outputTokens: 20,
        metrics: [MetricPointView(step: 1, epoch: 1, trainingLoss: 2.5, validationLoss: 2.7)]
    )

    static let call = InvokeResponse(
        target: "chat",
        reservation: "chat",
        model: "m",
        servedBy: "provisioned",
        output: "hello",
        finishReason: "length",
        inputTokens: 3,
        outputTokens: 4,
        latencyMs: 1.25,
        cost: 0.5
    )

    @Test("a job with every field set: same bytes as the converting encoder, and it decodes back whole")
    func jobEveryField() throws {
        let bytes = try Wire.encode(Self.job)
        #expect(bytes == (try Wire.encoder().encode(Self.job)))
        #expect(try Wire.decoder().decode(JobView.self, from: bytes) == Self.job)
        // Nested values are snake_case too.
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"batch_size\":8") && text.contains("\"training_loss\":2.5"))
    }

    @Test("a queued job leaves out what it does not have yet, as the converting encoder does")
    func jobFewFields() throws {
        var job = Self.job
        job.reason = nil
        job.hyperparameters = nil
        job.validationData = nil
        job.modelName = nil
        job.startedAt = nil
        job.endedAt = nil
        job.exitStatus = nil
        job.metrics = []
        let bytes = try Wire.encode(job)
        #expect(bytes == (try Wire.encoder().encode(job)))
        #expect(try Wire.decoder().decode(JobView.self, from: bytes) == job)
    }

    @Test("a page of jobs, with and without a next page: same bytes, and it decodes back whole")
    func jobList() throws {
        for list in [JobList(jobs: [Self.job], nextCursor: "7", more: 30), JobList(jobs: [Self.job]), JobList(jobs: [])] {
            let bytes = try Wire.encode(list)
            #expect(bytes == (try Wire.encoder().encode(list)))
            #expect(try Wire.decoder().decode(JobList.self, from: bytes) == list)
        }
        let text = String(decoding: try Wire.encode(JobList(jobs: [], nextCursor: "7", more: 30)), as: UTF8.self)
        #expect(text == #"{"jobs":[],"more":30,"next_cursor":"7"}"#)
        // The last page says there is no more, and has no cursor.
        #expect(String(decoding: try Wire.encode(JobList(jobs: [])), as: UTF8.self) == #"{"jobs":[],"more":0}"#)
    }

    @Test("a list from a berthd that did not page decodes with nothing more")
    func unpagedLists() throws {
        #expect(try Wire.decoder().decode(JobList.self, from: Data(#"{"jobs":[]}"#.utf8)) == JobList(jobs: []))
        #expect(try Wire.decoder().decode(ReservationList.self, from: Data(#"{"reservations":[]}"#.utf8)) == ReservationList(reservations: []))
        let page = ReservationList(reservations: [], nextCursor: "12", more: 3)
        let bytes = try Wire.encode(page)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"more":3,"next_cursor":"12","reservations":[]}"#)
        #expect(try Wire.decoder().decode(ReservationList.self, from: bytes) == page)
    }

    @Test("a call's answer: same bytes, and it decodes back whole")
    func invokeResponse() throws {
        for call in [
            Self.call,
            InvokeResponse(
                target: "m",
                reservation: nil,
                model: "m",
                servedBy: "on-demand",
                output: "",
                finishReason: nil,
                inputTokens: 1,
                outputTokens: 0,
                latencyMs: 0.5,
                cost: 0
            ),
        ] {
            let bytes = try Wire.encode(call)
            #expect(bytes == (try Wire.encoder().encode(call)))
            #expect(try Wire.decoder().decode(InvokeResponse.self, from: bytes) == call)
        }
    }

    /// The CLI sends these with their own keys (`Wire.encode(asWritten:)`) and berthd reads
    /// them with the converting decoder: a field the hand-written keys forgot would differ here.
    @Test("requests the CLI sends with their own keys: same bytes as the converting encoder, every field or few")
    func requests() throws {
        func check<R: SnakeCaseEncodable & Decodable & Equatable>(_ request: R) throws {
            let bytes = try Wire.encode(asWritten: request)
            #expect(bytes == (try Wire.encoder().encode(request)), "\(String(decoding: bytes, as: UTF8.self))")
            #expect(try Wire.decoder().decode(R.self, from: bytes) == request)
        }
        try check(
            SubmitJobRequest(
                name: "tune",
                reservation: "train",
                kind: "fine-tuning",
                data: "/d/train.jsonl",
                validationData: "/d/val.jsonl",
                output: "/o",
                modelName: "mine",
                epochs: 2,
                batchSize: 8,
                learningRate: 0.00005,
                warmupSteps: 1,
                modelUnits: 2,
                priority: 3
            )
        )
        try check(SubmitJobRequest(name: "b", reservation: "r", kind: "batch-inference", data: "/d", output: "/o"))
        try check(
            CreateReservationRequest(
                name: "train",
                model: "m",
                modelUnits: 2,
                purpose: "training",
                commitment: "one-month",
                start: "+1h",
                duration: "8h",
                wait: true,
                spillover: false
            )
        )
        try check(CreateReservationRequest(name: "chat", model: "m", modelUnits: 1))
        try check(UpdateReservationRequest(name: "renamed", model: "m2", modelUnits: 3))
        try check(UpdateReservationRequest(modelUnits: 3))
    }
}
