// Public imports: a conformance of public types to a public protocol is public itself, so
// these are the one place BerthStore's interface names GRDB. The rest of it hands out core
// values and plain structs.
public import BerthCore
public import GRDB

// Enums the ledger stores by their raw values. Decoded through GRDB, a value the enum does not
// know is a decoding error that names the column, never a default that hides a bad row. Read
// them with `try row.decode(atIndex:)`: a row subscript traps on a value it cannot decode.

extension UnitPool: DatabaseValueConvertible {}
extension Purpose: DatabaseValueConvertible {}
extension Commitment: DatabaseValueConvertible {}
extension ReservationStatus: DatabaseValueConvertible {}
extension JobKind: DatabaseValueConvertible {}
extension JobStatus: DatabaseValueConvertible {}
extension Customization: DatabaseValueConvertible {}
extension CallOutcome: DatabaseValueConvertible {}
extension ServiceTier: DatabaseValueConvertible {}
