/// A runner's argv from the config, such as `["berth-runner", "serve", "--port", "{port}"]`.
/// berthd runs only programs the config names, never anything named in a request: values are
/// substituted into arguments, each argument stays one argument, and there is no shell to
/// split or interpret them.
public struct ArgvTemplate: Sendable, Equatable {
    public var arguments: [String]

    public struct UnknownPlaceholder: Error, Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var argument: Int
        public var description: String { "argument \(argument) uses {\(name)}, which berthd does not fill in" }

        public init(name: String, argument: Int) {
            self.name = name
            self.argument = argument
        }
    }

    public init(_ arguments: [String]) {
        self.arguments = arguments
    }

    /// The placeholders the template uses, in order of first use.
    public var placeholders: [String] {
        var seen: [String] = []
        for argument in arguments {
            for name in Self.names(in: argument) where !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    /// The argv with every `{name}` replaced by `values[name]`. A value with spaces, quotes or
    /// `{...}` of its own stays inside its argument and is not expanded again.
    public func expand(_ values: [String: String]) throws(UnknownPlaceholder) -> [String] {
        var result: [String] = []
        for (index, argument) in arguments.enumerated() {
            var out = ""
            var rest = Substring(argument)
            while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
                out += rest[..<open]
                let name = String(rest[rest.index(after: open)..<close])
                guard let value = values[name] else { throw UnknownPlaceholder(name: name, argument: index) }
                out += value
                rest = rest[rest.index(after: close)...]
            }
            result.append(out + rest)
        }
        return result
    }

    static func names(in argument: String) -> [String] {
        var names: [String] = []
        var rest = Substring(argument)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }
}
