import BerthStore

extension MetricsScope {
    /// Whether a series with these labels may be shown: every label that names a reservation,
    /// a model or an owner names one of the user's own, a base model, or nothing (empty).
    /// Other labels (pool, status, tier, outcome, le) name nothing of anyone's.
    func admits(_ labels: [String: String]) -> Bool {
        if let reservation = labels["reservation"], !reservation.isEmpty, !reservations.contains(reservation) { return false }
        if let model = labels["model"], !model.isEmpty, !models.contains(model) { return false }
        if let owner = labels["owner"], owner != self.owner { return false }
        return true
    }

    /// The Prometheus text exposition with only the samples `admits` lets through. `# HELP`
    /// and `# TYPE` lines all stay, so each family is still declared once before its samples;
    /// a family may be left with none, which the format allows. A line that cannot be read is
    /// left out.
    func filter(_ exposition: [UInt8]) -> [UInt8] {
        var kept: [UInt8] = []
        kept.reserveCapacity(exposition.count)
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if line.first == UInt8(ascii: "#") {
                kept += line
            } else if let labels = Self.labels(of: line), admits(labels) {
                kept += line
            } else {
                continue
            }
            kept.append(UInt8(ascii: "\n"))
        }
        return kept
    }

    /// The labels of a sample line, `name{key="value",…} value`, with the escapes of label
    /// values (`\\`, `\"`, `\n`) undone; nil if the line is not a sample as the format has it.
    static func labels(of line: ArraySlice<UInt8>) -> [String: String]? {
        var labels: [String: String] = [:]
        var i = line.startIndex
        while i < line.endIndex, line[i] != UInt8(ascii: "{"), line[i] != UInt8(ascii: " ") { i += 1 }
        guard i > line.startIndex, i < line.endIndex else { return nil }
        guard line[i] == UInt8(ascii: "{") else { return labels }
        i += 1
        while true {
            guard i < line.endIndex else { return nil }
            if line[i] == UInt8(ascii: "}") { return labels }
            let keyStart = i
            while i < line.endIndex, line[i] != UInt8(ascii: "=") { i += 1 }
            guard i + 1 < line.endIndex, line[i + 1] == UInt8(ascii: "\"") else { return nil }
            let key = String(decoding: line[keyStart..<i], as: UTF8.self)
            i += 2
            var value: [UInt8] = []
            while true {
                guard i < line.endIndex else { return nil }
                let byte = line[i]
                if byte == UInt8(ascii: "\"") { break }
                if byte == UInt8(ascii: "\\") {
                    guard i + 1 < line.endIndex else { return nil }
                    switch line[i + 1] {
                    case UInt8(ascii: "n"): value.append(UInt8(ascii: "\n"))
                    case let escaped: value.append(escaped)
                    }
                    i += 2
                } else {
                    value.append(byte)
                    i += 1
                }
            }
            i += 1
            guard labels.updateValue(String(decoding: value, as: UTF8.self), forKey: key) == nil else { return nil }
            guard i < line.endIndex else { return nil }
            if line[i] == UInt8(ascii: ",") { i += 1 } else if line[i] != UInt8(ascii: "}") { return nil }
        }
    }
}
