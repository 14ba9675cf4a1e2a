// Public: a conformance of a public type to a public protocol is public itself.
public import ArgumentParser
public import BerthCore

// The core's enums as option values (`--kind`, `--status`, `--purpose`, `--commitment`): one
// definition for the daemon and the CLI, and ArgumentParser refuses any other value, listing
// the valid ones.
extension JobStatus: ExpressibleByArgument {}
extension JobKind: ExpressibleByArgument {}
extension ReservationStatus: ExpressibleByArgument {}
extension Purpose: ExpressibleByArgument {}
extension Commitment: ExpressibleByArgument {}
