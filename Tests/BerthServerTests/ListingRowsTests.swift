import BerthWire
import Foundation
import Testing

/// The rows the CLI's tables read (`JobRow`, `ReservationRow`) are parts of the answers berthd
/// writes: read from a whole answer's bytes, they hold its fields.
@Suite("Listing rows read from whole answers")
struct ListingRowsTests {
    static let reservation: ReservationView = {
        var view = ReservationView(
            name: "chat",
            owner: "alice",
            model: "m",
            purpose: "inference",
            modelUnits: 2,
            units: 4,
            commitment: "none",
            start: Date(timeIntervalSince1970: 1_700_000_000.25),
            end: Date(timeIntervalSince1970: 1_700_003_600),
            status: "active",
            waiting: true,
            spillover: true,
            createdAt: Date(timeIntervalSince1970: 1_699_999_000),
            endedAt: Date(timeIntervalSince1970: 1_700_003_600),
            statusReason: "expired",
            leases: [LeaseView(unit: "cpu-0", reservation: "chat", start: Date(timeIntervalSince1970: 1_700_000_000), end: nil)]
        )
        view.invocations = InvocationCountsView(calls: 5, served: 4, throttled: 1, inputTokens: 30, outputTokens: 40)
        view.serveRestarts = 1
        view.servePort = 8123
        view.serveCpuSeconds = 1.5
        view.servePeakMemoryBytes = 1 << 20
        return view
    }()

    @Test("a reservation with every field set: same bytes as the converting encoder, and it decodes back whole")
    func reservationEveryField() throws {
        let bytes = try Wire.encode(Self.reservation)
        #expect(bytes == (try Wire.encoder().encode(Self.reservation)))
        #expect(try Wire.decoder().decode(ReservationView.self, from: bytes) == Self.reservation)
        let page = ReservationList(reservations: [Self.reservation], nextCursor: "3", more: 2)
        #expect(try Wire.encode(page) == (try Wire.encoder().encode(page)))
    }

    @Test("a job's row holds the job's fields as its whole answer has them")
    func jobRow() throws {
        var running = WireEncodingTests.job
        running.status = "running"
        running.slurmState = "PENDING: Resources"
        for job in [WireEncodingTests.job, running] {
            let list = try Wire.decode(JobRowList.self, from: try Wire.encode(JobList(jobs: [job], nextCursor: "7", more: 3)))
            #expect(list.nextCursor == "7" && list.more == 3)
            let row = try #require(list.jobs.first)
            #expect(row.id == job.id && row.name == job.name && row.owner == job.owner && row.kind == job.kind)
            #expect(row.reservation == job.reservation && row.status == job.status && row.reason == job.reason)
            #expect(row.progress == job.progress && row.units == job.units && row.submittedAt == job.submittedAt)
            #expect(row.slurmState == job.slurmState && row.shownStatus == job.shownStatus)
            #expect(row.metrics.map(\.trainingLoss) == job.metrics.map(\.trainingLoss))
            #expect(row.metrics.map(\.validationLoss) == job.metrics.map(\.validationLoss))
        }
        #expect(try Wire.decode(JobRowList.self, from: Data(#"{"jobs":[]}"#.utf8)).more == 0)
    }

    @Test("a reservation's row holds the reservation's fields as its whole answer has them")
    func reservationRow() throws {
        let r = Self.reservation
        let list = try Wire.decode(ReservationRowList.self, from: try Wire.encode(ReservationList(reservations: [r], more: 0)))
        let row = try #require(list.reservations.first)
        #expect(row.name == r.name && row.owner == r.owner && row.model == r.model && row.purpose == r.purpose)
        #expect(row.modelUnits == r.modelUnits && row.units == r.units && row.commitment == r.commitment)
        #expect(row.start == r.start && row.end == r.end && row.status == r.status && row.waiting == r.waiting)
        #expect(list.nextCursor == nil && list.more == 0)
    }
}
