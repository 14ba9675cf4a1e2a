import BerthCore
import BerthStore
import Foundation

// Checks more than one controller makes. The rules themselves are BerthCore's; these map its
// problems to `APIError`, or read what a rule needs from the ledger as the caller may see it.

extension APIError {
    init(_ problem: FieldError) {
        self = .invalid(field: problem.field, problem.message)
    }
}

/// Throws the problem a core rule found, if any.
func refuse(_ problem: FieldError?) throws {
    if let problem { throw APIError(problem) }
}

func checkName(_ name: String, field: String = "name") throws {
    do {
        try ReservationName.validate(name, field: field)
    } catch {
        throw APIError.invalid(field: error.field, error.message)
    }
}

/// Highest `model_units` one request may ask for: far above any pool, low enough that
/// multiplying by a model's size cannot overflow.
let maxModelUnits = 100_000

func checkModelUnits(_ units: Int, field: String = "model_units") throws {
    guard (1...maxModelUnits).contains(units) else {
        throw APIError.invalid(field: field, "must be at least 1 (and at most \(maxModelUnits)), got \(units)")
    }
}

func enumField<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ text: String, field: String) throws -> T where T.RawValue == String {
    guard let value = T(rawValue: text) else {
        throw APIError.invalid(field: field, "'\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return value
}

extension Caller {
    /// The catalog's base models, and custom models of their own (any, for an admin). A custom
    /// model is made from its owner's data, so to anyone else it does not exist.
    func canSee(_ model: Model) -> Bool {
        !model.isCustom || canSee(owner: model.owner ?? "")
    }

    func checkCanSee(_ reservation: Reservation) throws {
        guard canSee(owner: reservation.owner) else {
            throw APIError(.forbidden, "reservation '\(reservation.name)' belongs to another user; you can see and change only your own")
        }
    }
}

extension LedgerTransaction {
    func liveModel(_ id: String, field: String = "model") throws -> Model {
        guard let model = try model(id: id) else {
            throw APIError(.notFound, "\(field): no model '\(id)'; `berth models` lists the catalog")
        }
        return model
    }

    /// A model the caller may reserve or look at.
    func visibleModel(_ id: String, caller: Caller, field: String = "model") throws -> Model {
        let model = try liveModel(id, field: field)
        guard caller.canSee(model) else {
            throw APIError(.notFound, "\(field): no model '\(id)'; `berth models` lists the catalog")
        }
        return model
    }

    /// The reservation of that name, if the caller may see it.
    func visibleReservation(_ name: String, caller: Caller) throws -> Reservation {
        guard let r = try reservation(named: name) else {
            throw APIError(.notFound, "no reservation '\(name)'; `berth reservations` lists yours")
        }
        try caller.checkCanSee(r)
        return r
    }
}
