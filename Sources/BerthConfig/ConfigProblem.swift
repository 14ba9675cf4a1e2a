/// One thing wrong with a config file, at the key path where it is: `units[3].id`,
/// `daemon.admins[1]`, or `""` for the file as a whole (unreadable, or not valid TOML).
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var keyPath: String
    /// What is wrong, and what to do about it.
    public var message: String

    public init(keyPath: String, message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String { keyPath.isEmpty ? message : "\(keyPath): \(message)" }
}

/// Every problem found in a config, not just the first: an operator fixes them all in one go.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]

    public init(problems: [ConfigProblem]) {
        self.problems = problems
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
