import ArgumentParser
import BerthWire
import FoundationEssentials

extension Berth {
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "compare",
            abstract: "Run one prompt on two targets and show the answers side by side.",
            discussion: """
                Each TARGET is a reservation name or a base model id, as for 'berth invoke'. The \
                calls are made one after the other, and both are metered. Shows for each: the tier \
                that served it, the model, the output, the token counts, the latency and the cost. \
                If a call fails, its column shows the error and berth exits with that call's exit \
                status (the higher one if both fail). --json prints {"results": [...]}: each \
                result is the API's answer, or {"target", "error": {"code", "message"}}.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The first reservation name or base model id.")
        var first: String

        @Argument(help: "The second reservation name or base model id.")
        var second: String

        @Option(parsing: .unconditional, help: ArgumentHelp("The text to send to both.", valueName: "text"))
        var prompt: String

        @Option(help: "The most tokens to generate (default: 64, or the model's max_tokens if smaller).")
        var maxTokens: Int?

        /// How the output column is cut: lines of at most this many characters, at most this many lines.
        static let outputWidth = 60
        static let outputLines = 10

        func validate() throws {
            try ArgumentCheck.invocation(target: first, prompt: prompt, maxTokens: maxTokens)
            try ArgumentCheck.invocation(target: second, prompt: prompt, maxTokens: maxTokens)
        }

        /// One side of the comparison: the answer, or why there is none.
        enum Outcome {
            case answered(Reply<InvokeResponse>)
            case failed(CommandFailure)
        }

        func run() throws {
            var outcomes: [(target: String, outcome: Outcome)] = []
            // One after the other, so neither call's latency includes the other's load.
            for target in [first, second] {
                let request = InvokeRequest(target: target, prompt: prompt, maxTokens: maxTokens)
                do {
                    // No Idempotency-Key, so no retry: each call is metered (see `Invoke`).
                    let reply = try global.call(InvokeResponse.self, "POST", "/v1/invoke", body: try .json(request))
                    outcomes.append((target, .answered(reply)))
                } catch  where error.status == .unreachable {
                    // No daemon: the other call cannot be made either, and there is nothing to compare.
                    throw error
                } catch {
                    outcomes.append((target, .failed(error)))
                }
            }

            let shown = global.json ? JSONDocument.pretty(Self.document(outcomes)) : Self.table(outcomes)
            // Written at once rather than through `print`'s buffer, so the errors reported below
            // come after it when stdout and stderr go to the same place.
            StandardStream.write(shown + "\n")

            let failures = outcomes.compactMap { side -> (String, CommandFailure)? in
                if case .failed(let failure) = side.outcome { return (side.target, failure) }
                return nil
            }
            guard let worst = failures.map(\.1.status.rawValue).max() else { return }
            for (target, failure) in failures {
                CommandFailure(code: failure.code, message: "'\(target)': \(failure.message)", status: failure.status).report()
            }
            throw ExitCode(worst)
        }

        /// `{"results":[…]}`: each answer's bytes as berthd sent them, or the error that stands in for it.
        static func document(_ outcomes: [(target: String, outcome: Outcome)]) -> Data {
            struct Failed: Encodable {
                var target: String
                var error: ErrorBody.Detail
            }
            let results = outcomes.map { side -> Data in
                switch side.outcome {
                case .answered(let reply) where !reply.body.isEmpty:
                    return reply.body
                case .answered(let reply):
                    return (try? Wire.encoder().encode(reply.value)) ?? Data("{}".utf8)
                case .failed(let failure):
                    let failed = Failed(target: side.target, error: ErrorBody(code: failure.code, message: failure.message).error)
                    return (try? Wire.encoder().encode(failed)) ?? Data("{}".utf8)
                }
            }
            var document = Data(#"{"results":["#.utf8)
            for (index, result) in results.enumerated() {
                if index > 0 { document.append(Data(",".utf8)) }
                document.append(result)
            }
            document.append(Data("]}".utf8))
            return document
        }

        /// A column per target, a row per field; the output wrapped, and an `error` row if a call failed.
        static func table(_ outcomes: [(target: String, outcome: Outcome)]) -> String {
            var rows: [[String]] = [[""] + outcomes.map(\.target)]
            func row(_ label: String, _ cell: (InvokeResponse) -> String) {
                rows.append(
                    [label]
                        + outcomes.map {
                            if case .answered(let reply) = $0.outcome { return cell(reply.value) }
                            return "-"
                        }
                )
            }
            func lines(_ label: String, _ cell: (Outcome) -> [String]) {
                let columns = outcomes.map { cell($0.outcome) }
                let height = max(1, columns.map(\.count).max() ?? 0)
                for line in 0..<height {
                    rows.append([line == 0 ? label : ""] + columns.map { line < $0.count ? $0[line] : "" })
                }
            }

            row("served by") { response in
                response.reservation.map { "\(response.servedBy) (\($0))" } ?? response.servedBy
            }
            row("model") { $0.model }
            lines("output") { outcome in
                guard case .answered(let reply) = outcome else { return ["-"] }
                let wrapped = wrap(reply.value.output, width: outputWidth, lines: outputLines)
                return wrapped.isEmpty ? ["-"] : wrapped
            }
            row("input tokens") { String($0.inputTokens) }
            row("output tokens") { String($0.outputTokens) }
            row("latency") { Invoke.latency($0.latencyMs) }
            row("cost") { Format.number($0.cost) }
            if outcomes.contains(where: { if case .failed = $0.outcome { true } else { false } }) {
                lines("error") { outcome in
                    guard case .failed(let failure) = outcome else { return ["-"] }
                    return wrap("\(failure.code): \(failure.message)", width: outputWidth, lines: outputLines)
                }
            }
            return align(rows)
        }

        /// Text as lines of at most `width` characters, broken at spaces where it can be, and at
        /// most `lines` of them, the last ending in `…` if there was more. Control characters
        /// (tabs, carriage returns) become spaces so they cannot break the columns.
        static func wrap(_ text: String, width: Int, lines limit: Int) -> [String] {
            var out: [String] = []
            let paragraphs = text.split(separator: "\n", omittingEmptySubsequences: false).map { paragraph in
                String(paragraph.map { $0.isASCII && ($0.asciiValue! < 0x20 || $0.asciiValue! == 0x7f) ? " " : $0 })
            }
            for paragraph in paragraphs {
                var line = ""
                for word in paragraph.split(separator: " ", omittingEmptySubsequences: true) {
                    var word = Substring(word)
                    if !line.isEmpty && line.count + 1 + word.count > width {
                        out.append(line)
                        line = ""
                    }
                    // A word longer than a line is cut at the width.
                    while word.count > width {
                        out.append(String(word.prefix(width)))
                        word = word.dropFirst(width)
                    }
                    line += (line.isEmpty ? "" : " ") + word
                }
                out.append(line)
            }
            while out.last?.isEmpty == true { out.removeLast() }
            guard out.count > limit else { return out }
            var kept = Array(out.prefix(limit))
            kept[limit - 1] = String(kept[limit - 1].prefix(width - 1)) + "…"
            return kept
        }

        /// Columns two spaces apart, as `Table` lays them out; the targets head the columns as
        /// they are written (`Table` would put them in capitals, and a model id is case-sensitive).
        static func align(_ rows: [[String]]) -> String {
            let columns = rows.map(\.count).max() ?? 0
            let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
            return rows.map { cells in
                let padded = cells.enumerated().map { column, cell in
                    column == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
                }
                let line = padded.joined(separator: "  ")
                // A row whose last cell is empty (a continuation line of the first column) ends in spaces.
                return String(line.reversed().drop(while: { $0 == " " }).reversed())
            }
            .joined(separator: "\n")
        }
    }
}
