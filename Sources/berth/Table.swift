/// Rows printed as aligned columns, headers in capitals, two spaces apart, as `kubectl get` does.
struct Table {
    private let headers: [String]
    private var rows: [[String]] = []

    init(_ headers: String...) {
        self.headers = headers.map { $0.uppercased() }
    }

    mutating func append(_ cells: String...) {
        precondition(cells.count == headers.count, "a row has \(cells.count) cells for \(headers.count) columns")
        rows.append(cells)
    }

    func render() -> String {
        Self.align([headers] + rows)
    }

    /// `label:` and value pairs, values aligned, for one object shown in full.
    static func fields(_ pairs: [(String, String)]) -> String {
        align(pairs.map { [$0.0 + ":", $0.1] })
    }

    private static func align(_ lines: [[String]]) -> String {
        let columns = lines.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in
            lines.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0
        }
        return lines.map { cells in
            cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }
            .joined(separator: "  ")
        }
        .joined(separator: "\n")
    }
}
