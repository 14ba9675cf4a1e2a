/// What `berth` says when the word where a subcommand goes names none, as in `berth reserv x`:
/// the closest subcommand by edit distance, or, with none close, all of them.
enum UnknownCommand {
    /// Root options that take a value: the word after one is that value, not a command.
    static let optionsWithValue: Set<String> = ["--socket"]

    /// The message for `arguments` (the command line after the program's name), or `nil` when
    /// its first word that is not an option is one of `commands` or there is no such word.
    static func message(arguments: [String], commands: [String]) -> String? {
        guard let word = firstWord(arguments), !commands.contains(word) else { return nil }
        let scored = commands.map { (name: $0, distance: distance(word, $0)) }
        let best = scored.map(\.distance).min() ?? .max
        let close = scored.filter { $0.distance == best && $0.distance <= allowedDistance($0.name) }.map { "'\($0.name)'" }
        guard close.isEmpty else {
            return "unknown command '\(word)'; did you mean \(close.joined(separator: " or "))?"
        }
        return "unknown command '\(word)'; the commands are \(commands.joined(separator: ", ")) (berth --help says what each does)"
    }

    /// The first word that is neither an option nor a root option's value.
    static func firstWord(_ arguments: [String]) -> String? {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" { return arguments.dropFirst(index + 1).first }
            if optionsWithValue.contains(argument) {
                index += 2
                continue
            }
            if !argument.hasPrefix("-") { return argument }
            index += 1
        }
        return nil
    }

    /// How many edits a word may be from `name` and still be taken for it: one in a short
    /// name, one in three in a longer one.
    static func allowedDistance(_ name: String) -> Int {
        max(1, name.count / 3)
    }

    /// Edits (an insertion, deletion, substitution, or swap of two neighbours) that turn `a`
    /// into `b`: the optimal string alignment distance, so `jbos` is one edit from `jobs`.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
