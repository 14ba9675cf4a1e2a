import BerthWire
import Foundation
import Testing

@testable import BerthServer

@Suite("Strict request bodies")
struct RequestDecodingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var json: String
        /// The field the error must name, or nil when the body is accepted.
        var field: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "a complete body is accepted", json: #"{"name":"a","model":"m","model_units":2,"wait":true}"#, field: nil),
        Case(name: "an unknown field is named", json: #"{"name":"a","model":"m","model_units":2,"colour":1}"#, field: "colour"),
        Case(name: "a camelCase spelling of a known field is unknown", json: #"{"name":"a","model":"m","modelUnits":2}"#, field: "modelUnits"),
        Case(name: "a missing field is named", json: #"{"name":"a","model":"m"}"#, field: "model_units"),
        Case(name: "a string where an integer belongs is named", json: #"{"name":"a","model":"m","model_units":"2"}"#, field: "model_units"),
        Case(name: "a fraction where an integer belongs is named", json: #"{"name":"a","model":"m","model_units":2.5}"#, field: "model_units"),
        Case(name: "a number too large for an integer is named", json: #"{"name":"a","model":"m","model_units":1e40}"#, field: "model_units"),
        Case(name: "null for a required field is named", json: #"{"name":null,"model":"m","model_units":1}"#, field: "name"),
        Case(name: "a boolean given as a string is named", json: #"{"name":"a","model":"m","model_units":1,"wait":"yes"}"#, field: "wait"),
    ]

    @Test(arguments: cases)
    func decoding(_ c: Case) {
        do {
            let decoded = try Requests.decode(CreateReservationRequest.self, from: Data(c.json.utf8))
            #expect(c.field == nil, "accepted \(decoded) but \(c.field ?? "") should have been refused")
        } catch let error as APIError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("\(c.field ?? "<accepted>"):"), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("bodies that are not a JSON object are refused as a whole", arguments: ["", "[]", "42", "{", "\u{FF}"])
    func notAnObject(_ text: String) {
        #expect(throws: APIError.self) { try Requests.decode(CreateReservationRequest.self, from: Data(text.utf8)) }
    }

    @Test("an error leaves as {\"error\":{\"code\",\"message\"}} with its HTTP status")
    func errorShape() throws {
        let error = APIError(.commitmentActive, "wait until it ends")
        #expect(error.status.code == 409)
        let body = try Wire.decoder().decode(ErrorBody.self, from: error.body)
        #expect(body == ErrorBody(code: "commitment-active", message: "wait until it ends"))
        #expect(APIError(.throttled, "slow down", retryAfterSeconds: 3).headers[.retryAfter] == "3")
    }
}

@Suite("Callers")
struct CallerTests {
    @Test("root is always an admin; others are admins by name or by group")
    func admins() {
        let directory = CallerDirectory(admins: ["nobody"], adminGroups: ["root"])
        #expect(directory.caller(uid: 0, gid: 0).isAdmin)
        #expect(directory.caller(uid: 0, gid: 0).user == "root")
        #expect(directory.caller(uid: 65534, gid: 65534).isAdmin)
        // uid 4242 has no password entry: named by number, admin through its primary group 0.
        #expect(directory.caller(uid: 4242, gid: 0).isAdmin)
        #expect(directory.caller(uid: 4242, gid: 0).user == "4242")
        #expect(!CallerDirectory(admins: [], adminGroups: []).caller(uid: 65534, gid: 65534).isAdmin)
    }

    @Test("a caller sees its own reservations, an admin everyone's")
    func visibility() {
        let alice = Caller(uid: 1000, gid: 1000, user: "alice", isAdmin: false)
        #expect(alice.canSee(owner: "alice"))
        #expect(!alice.canSee(owner: "bob"))
        #expect(Caller(uid: 0, gid: 0, user: "root", isAdmin: true).canSee(owner: "bob"))
    }
}
