// Public: a conformance of a public type to a public protocol is public itself.
public import ArgumentParser
public import BerthCore

// The core's enums as option values (`--kind`, `--status`, `--purpose`, `--commitment`): one
// definition for the daemon and the CLI, and ArgumentParser refuses any other value, listing
// the valid ones.
extension JobStatus: ExpressibleByArgument, CoreEnumArgument {}
extension JobKind: ExpressibleByArgument, CoreEnumArgument {}
extension ReservationStatus: ExpressibleByArgument, CoreEnumArgument {}
extension Purpose: ExpressibleByArgument, CoreEnumArgument {}
extension Commitment: ExpressibleByArgument, CoreEnumArgument {}

/// A core enum as an option value, with its two lists of values spelled out. ArgumentParser
/// builds them at every parse of a command with such an option, and its generic defaults (a
/// key path over `allCases`, a `reduce`) each make the runtime look up a conformance, a scan
/// of every record in the binary; these make none. They give the same lists: the raw values,
/// and no descriptions, as the defaults do when a value reads as its raw value.
public protocol CoreEnumArgument: ExpressibleByArgument, CaseIterable, RawRepresentable where RawValue == String {}

extension CoreEnumArgument {
    public static var allValueStrings: [String] { allCases.map { $0.rawValue } }
    public static var allValueDescriptions: [String: String] { [:] }
}
