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

    /// Each column as wide as its widest cell, the last cell of a line unpadded. Written as
    /// UTF-8 bytes into one buffer, widths counted once per cell: for a listing of 1,000 jobs,
    /// appending each cell and its padding to a `String` was a quarter of the command's
    /// instructions, and padding each cell with a new string and joining them more.
    private static func align(_ lines: [[String]]) -> String {
        let cellWidths = lines.map { $0.map(width) }
        var widths: [Int] = []
        for line in cellWidths {
            for (column, width) in line.enumerated() {
                if column == widths.count { widths.append(width) } else { widths[column] = max(widths[column], width) }
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(lines.count * (widths.reduce(0, +) + 2 * widths.count + 1))
        for (row, cells) in lines.enumerated() {
            if row > 0 { out.append(UInt8(ascii: "\n")) }
            for (column, cell) in cells.enumerated() {
                if column > 0 { out.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: " ")]) }
                out.append(contentsOf: cell.utf8)
                if column < cells.count - 1 {
                    out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: widths[column] - cellWidths[row][column]))
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A cell's width in characters: its bytes when they are ASCII with no CR (most cells), else its
    /// characters.
    private static func width(_ cell: String) -> Int {
        cell.utf8.allSatisfy { $0 < 0x80 && $0 != 0x0D } ? cell.utf8.count : cell.count
    }
}
