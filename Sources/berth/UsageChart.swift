import BerthCore
import BerthWire
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// `berth usage --chart`: the report as a standalone SVG that a browser opens. The top panel has
/// reserved (dashed) and busy (solid) compute units over time, one `<g class="series">` per
/// report row; the second, for rows with a token budget (inference reservations), tokens per
/// minute (solid) against the budget (dashed).
enum UsageChart {
    /// Buckets asked of the daemon for a chart: finer than the table's sparkline.
    static let buckets = 96

    static let width = 1040.0
    static let plot = (left: 72.0, right: 760.0)
    static let legendX = 784.0
    static let panelHeight = 260.0
    static let title = 84.0
    static let gap = 72.0

    /// Tableau 10: distinct, and readable on white; beyond ten, hues a golden angle apart.
    static let palette = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    ]

    static func colour(_ index: Int) -> String {
        if index < palette.count { return palette[index] }
        let hue = (Double(index - palette.count) * 137.508).truncatingRemainder(dividingBy: 360)
        return "hsl(\(Int(hue)), 65%, 42%)"
    }

    static func svg(_ report: UsageReportView) -> String {
        let rows = report.rows
        let tokenRows = rows.enumerated().filter { _, row in row.series.budgetPerMinute.contains { $0 > 0 } }
        let legendHeight = 56.0 + Double(rows.count) * 18
        let panels = tokenRows.isEmpty ? 1.0 : 2.0
        let height = max(title + panels * panelHeight + (panels - 1) * gap + 48, title + legendHeight + 24)
        // The legend names every row in full (keys are distinct, shortened ones need not be):
        // the picture widens for a long name instead.
        let longest = rows.map { legendLabel($0).count }.max() ?? 0
        let width = max(Self.width, legendX + 30 + Double(longest) * 7.5 + 16)
        let range = (from: report.from, to: report.to)
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" viewBox="0 0 \(n(width)) \(n(height))" \
            font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">
            <title>\(escape(heading(report)))</title>
            <style>
              .axis line, .axis path { stroke: #888; }
              .grid line { stroke: #e6e6e6; }
              .reserved { fill: none; stroke-width: 2; }
              .busy { fill: none; stroke-width: 2; }
              .budget { fill: none; stroke-width: 2; }
              .tokens { fill: none; stroke-width: 2; }
              text { fill: #222; }
              .muted { fill: #666; }
            </style>
            <rect width="100%" height="100%" fill="#fff"/>
            <text x="\(n(plot.left))" y="24" font-size="16" font-weight="600">\(escape(heading(report)))</text>
            <text x="\(n(plot.left))" y="42" class="muted">\(escape(subheading(report)))</text>

            """

        // Panel 1: reserved vs busy compute units.
        let top = title
        let unitMax = niceCeiling(rows.flatMap { $0.series.reservedUnits + $0.series.busyUnits }.max() ?? 0)
        out += panel(
            y: top,
            range: range,
            maximum: unitMax,
            axisTitle: "compute units",
            caption: "Reserved (dashed) and busy (solid) compute units"
        )
        out += "<g class=\"panel units\">\n"
        for (index, row) in rows.enumerated() {
            let colour = colour(index)
            out += "<g class=\"series\" data-key=\"\(escape(row.key))\">\n"
            out +=
                "<title>\(escape("\(row.key): \(UsageNumber.hours(row.reservedUnitHours)) unit-hours reserved, \(UsageNumber.hours(row.busyUnitHours)) busy"))</title>\n"
            out += polyline(
                row.series.reservedUnits,
                class: "reserved",
                colour: colour,
                dash: dash(index, of: rows.count),
                report: report,
                top: top,
                maximum: unitMax
            )
            out += polyline(row.series.busyUnits, class: "busy", colour: colour, report: report, top: top, maximum: unitMax)
            out += "</g>\n"
        }
        out += "</g>\n"
        if rows.isEmpty {
            out +=
                "<text x=\"\(n((plot.left + plot.right) / 2))\" y=\"\(n(top + panelHeight / 2))\" text-anchor=\"middle\" class=\"muted\">No usage in this window</text>\n"
        }

        // Panel 2: tokens per minute against the budget, for inference reservations.
        if !tokenRows.isEmpty {
            let y = top + panelHeight + gap
            let tokenMax = niceCeiling(tokenRows.flatMap { $0.element.series.budgetPerMinute + $0.element.series.tokensPerMinute }.max() ?? 0)
            out += panel(
                y: y,
                range: range,
                maximum: tokenMax,
                axisTitle: "tokens per minute",
                caption: "Tokens per minute (solid) against the budget (dashed), inference reservations"
            )
            out += "<g class=\"panel tokens-per-minute\">\n"
            for (position, (index, row)) in tokenRows.enumerated() {
                let colour = colour(index)
                out += "<g class=\"token-series\" data-key=\"\(escape(row.key))\">\n"
                out += "<title>\(escape("\(row.key): \(UsageNumber.grouped(row.inputTokens + row.outputTokens)) tokens"))</title>\n"
                out += polyline(
                    row.series.budgetPerMinute,
                    class: "budget",
                    colour: colour,
                    dash: dash(position, of: tokenRows.count),
                    report: report,
                    top: y,
                    maximum: tokenMax
                )
                out += polyline(row.series.tokensPerMinute, class: "tokens", colour: colour, report: report, top: y, maximum: tokenMax)
                out += "</g>\n"
            }
            out += "</g>\n"
        }

        out += legend(rows)
        out += "</svg>\n"
        return out
    }

    static func heading(_ report: UsageReportView) -> String {
        "berth usage by \(report.by), \(Format.time(report.from)) to \(Format.time(report.to))"
    }

    static func subheading(_ report: UsageReportView) -> String {
        let t = report.totals
        return "\(UsageNumber.hours(t.reservedUnitHours)) unit-hours reserved, \(UsageNumber.hours(t.busyUnitHours)) busy "
            + "(\(t.reservedUnitHours > 0 ? UsageNumber.percent(t.utilization) : "-")), cost \(UsageNumber.money(t.cost)); "
            + "points every \(UsageNumber.duration(report.bucketSeconds)), times in UTC"
    }

    // MARK: Axes and lines

    static func x(_ date: Date, _ report: UsageReportView) -> Double {
        let span = report.to.timeIntervalSince(report.from)
        guard span > 0 else { return plot.left }
        return plot.left + date.timeIntervalSince(report.from) / span * (plot.right - plot.left)
    }

    static func y(_ value: Double, top: Double, maximum: Double) -> Double {
        let bottom = top + panelHeight
        guard maximum > 0 else { return bottom }
        return bottom - min(max(value, 0), maximum) / maximum * panelHeight
    }

    /// A step line: each bucket's value held across the bucket, as units are held.
    /// Dashes of the dashed lines, `index` of `count`: each series draws its dash where the others
    /// leave a gap, so reservations holding the same units show as one line of alternating colours
    /// instead of the last one hiding the rest.
    static func dash(_ index: Int, of count: Int) -> (array: String, offset: Double) {
        let lanes = min(max(count, 1), 6)
        return ("6 \(6 * (lanes - 1) + 4)", -6 * Double(index % lanes))
    }

    static func polyline(
        _ values: [Double],
        class name: String,
        colour: String,
        dash: (array: String, offset: Double)? = nil,
        report: UsageReportView,
        top: Double,
        maximum: Double
    ) -> String {
        var points: [String] = []
        for (i, value) in values.enumerated() {
            let start = report.from.addingTimeInterval(Double(i) * report.bucketSeconds)
            let end = min(report.to, start.addingTimeInterval(report.bucketSeconds))
            let level = n(y(value, top: top, maximum: maximum))
            points.append("\(n(x(start, report))),\(level)")
            points.append("\(n(x(end, report))),\(level)")
        }
        let dashed = dash.map { " stroke-dasharray=\"\($0.array)\" stroke-dashoffset=\"\(n($0.offset))\"" } ?? ""
        return "<polyline class=\"\(name)\" stroke=\"\(colour)\"\(dashed) points=\"\(points.joined(separator: " "))\"/>\n"
    }

    static func panel(y top: Double, range: (from: Date, to: Date), maximum: Double, axisTitle: String, caption: String) -> String {
        let bottom = top + panelHeight
        var out = "<g class=\"axis\">\n"
        out += "<text x=\"\(n(plot.left))\" y=\"\(n(top - 8))\" font-weight=\"600\">\(escape(caption))</text>\n"
        // Unit axis: gridlines at round values.
        out += "<g class=\"grid\">\n"
        for value in ticks(maximum) {
            let level = n(y(value, top: top, maximum: maximum))
            out += "<line x1=\"\(n(plot.left))\" y1=\"\(level)\" x2=\"\(n(plot.right))\" y2=\"\(level)\"/>\n"
        }
        out += "</g>\n"
        for value in ticks(maximum) {
            let level = y(value, top: top, maximum: maximum)
            out += "<text x=\"\(n(plot.left - 6))\" y=\"\(n(level + 4))\" text-anchor=\"end\">\(escape(axisNumber(value)))</text>\n"
        }
        out +=
            "<text transform=\"translate(\(n(plot.left - 52)),\(n(top + panelHeight / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"muted\">\(escape(axisTitle))</text>\n"
        out += "<line x1=\"\(n(plot.left))\" y1=\"\(n(top))\" x2=\"\(n(plot.left))\" y2=\"\(n(bottom))\"/>\n"
        out += "<line x1=\"\(n(plot.left))\" y1=\"\(n(bottom))\" x2=\"\(n(plot.right))\" y2=\"\(n(bottom))\"/>\n"
        // Time axis: ticks at round UTC times.
        let span = range.to.timeIntervalSince(range.from)
        let step = timeStep(span)
        // Weeks start on Mondays (1970-01-01 was a Thursday); shorter steps at round UTC times.
        let origin: TimeInterval = step.truncatingRemainder(dividingBy: 7 * 86_400) == 0 ? 4 * 86_400 : 0
        var tick = ((range.from.timeIntervalSince1970 - origin) / step).rounded(.up) * step + origin
        while tick <= range.to.timeIntervalSince1970 {
            let date = Date(timeIntervalSince1970: tick)
            let fraction = span > 0 ? date.timeIntervalSince(range.from) / span : 0
            let at = n(plot.left + fraction * (plot.right - plot.left))
            out += "<line x1=\"\(at)\" y1=\"\(n(bottom))\" x2=\"\(at)\" y2=\"\(n(bottom + 5))\"/>\n"
            out += "<text x=\"\(at)\" y=\"\(n(bottom + 18))\" text-anchor=\"middle\">\(escape(timeLabel(date, step: step)))</text>\n"
            tick += step
        }
        out += "<text x=\"\(n((plot.left + plot.right) / 2))\" y=\"\(n(bottom + 36))\" text-anchor=\"middle\" class=\"muted\">time (UTC)</text>\n"
        out += "</g>\n"
        return out
    }

    static func legend(_ rows: [UsageRowView]) -> String {
        var out = "<g class=\"legend\">\n"
        var y = title + 4
        out +=
            "<line x1=\"\(n(legendX))\" y1=\"\(n(y))\" x2=\"\(n(legendX + 24))\" y2=\"\(n(y))\" stroke=\"#444\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
        out += "<text x=\"\(n(legendX + 30))\" y=\"\(n(y + 4))\">reserved, budget</text>\n"
        y += 18
        out += "<line x1=\"\(n(legendX))\" y1=\"\(n(y))\" x2=\"\(n(legendX + 24))\" y2=\"\(n(y))\" stroke=\"#444\" stroke-width=\"2\"/>\n"
        out += "<text x=\"\(n(legendX + 30))\" y=\"\(n(y + 4))\">busy, tokens</text>\n"
        y += 26
        for (index, row) in rows.enumerated() {
            out += "<rect x=\"\(n(legendX))\" y=\"\(n(y - 6))\" width=\"24\" height=\"10\" fill=\"\(colour(index))\"/>\n"
            out += "<text x=\"\(n(legendX + 30))\" y=\"\(n(y + 4))\">\(escape(legendLabel(row)))</text>\n"
            y += 18
        }
        out += "</g>\n"
        return out
    }

    static func legendLabel(_ row: UsageRowView) -> String {
        "\(row.key) (\(row.reservedUnitHours > 0 ? UsageNumber.percent(row.utilization) : "-"))"
    }

    /// 0, then four or five round steps up to `maximum`.
    static func ticks(_ maximum: Double) -> [Double] {
        guard maximum > 0 else { return [0] }
        let step = niceStep(maximum / 5)
        return stride(from: 0.0, through: maximum + step / 1000, by: step).map { $0 }
    }

    /// The smallest 1, 2 or 5 × 10ⁿ at least `value`: the top of an axis, so lines never touch it
    /// by accident. At least 1 (an axis of nothing still has a scale).
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        // Headroom: a line at the maximum stays clear of the panel's top.
        let value = value * 1.08
        let step = niceStep(value / 5)
        return max(step, (value / step).rounded(.up) * step)
    }

    static func niceStep(_ rough: Double) -> Double {
        guard rough > 0, rough.isFinite else { return 1 }
        let magnitude = pow(10, (log10(rough)).rounded(.down))
        for factor in [1.0, 2, 5, 10] where factor * magnitude >= rough { return factor * magnitude }
        return 10 * magnitude
    }

    /// `0.5`, `250`, `20k`, `1.5M`: short enough to sit left of the axis.
    static func axisNumber(_ value: Double) -> String {
        let short = { (v: Double) in UsageNumber.plain((v * 1000).rounded() / 1000) }
        if value >= 1_000_000 { return short(value / 1_000_000) + "M" }
        if value >= 10_000 { return short(value / 1000) + "k" }
        return short(value)
    }

    /// A round step between time ticks: at most about eight of them over the window.
    static func timeStep(_ span: TimeInterval) -> TimeInterval {
        let steps: [TimeInterval] = [
            1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
            86_400, 2 * 86_400, 7 * 86_400, 14 * 86_400, 28 * 86_400, 56 * 86_400, 91 * 86_400,
        ]
        return steps.first { span / $0 <= 8 } ?? 182 * 86_400
    }

    static func timeLabel(_ date: Date, step: TimeInterval) -> String {
        let text = TimeExpression.format(date)  // 2026-11-25T03:47:07Z
        let day = String(text.prefix(10))
        let clock = text.dropFirst(11).prefix(8)
        if step >= 86_400 { return day }
        if step >= 60 { return String(day.dropFirst(5)) + " " + clock.prefix(5) }
        return String(clock)
    }

    /// A coordinate with at most one decimal.
    static func n(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    /// Text and attribute values for XML.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // Characters XML 1.0 does not allow at all.
            case _ where scalar.value < 0x20 && scalar != "\t" && scalar != "\n" && scalar != "\r": out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
