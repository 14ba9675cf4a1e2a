import BerthCore
import BerthTestSupport
import Foundation
import Testing

/// Times written and read by position must be what `Date.ISO8601FormatStyle` writes and reads,
/// for every time berth may meet.
@Suite("RFC 3339 by position")
struct RFC3339Tests {
    /// Whole seconds and milliseconds from 1900 to 2200, and the ends of the range read by position.
    static func times() -> [Date] {
        var generator = SeededGenerator(seed: 3339)
        var times = (0..<5_000).map { _ in
            Date(timeIntervalSince1970: Double(Int64.random(in: -2_208_988_800_000...7_258_118_400_000, using: &generator)) / 1000)
        }
        times += (0..<1_000).map { _ in Date(timeIntervalSince1970: Double(Int64.random(in: -2_208_988_800...7_258_118_400, using: &generator))) }
        times += [0, -1, 86_399, 951_782_400, 4_107_542_399.999, -2_208_988_800, 253_402_300_799, 64_092_211_200].map(
            Date.init(timeIntervalSince1970:)
        )
        return times
    }

    @Test("whole seconds are written as the format style writes them, the fraction cut off")
    func wholeSeconds() {
        for time in Self.times() {
            #expect(RFC3339.wholeSeconds(time) == Date.ISO8601FormatStyle().format(time), "\(time.timeIntervalSince1970)")
        }
    }

    @Test("milliseconds are written as the format style writes the time rounded to them")
    func milliseconds() {
        for time in Self.times() {
            let rounded = (time.timeIntervalSince1970 * 1000).rounded()
            let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date(timeIntervalSince1970: (rounded + 0.25) / 1000))
            #expect(RFC3339.milliseconds(time) == style, "\(time.timeIntervalSince1970)")
        }
    }

    @Test("a time it writes is read back as the format style reads it")
    func parse() {
        for time in Self.times() {
            for text in [Date.ISO8601FormatStyle().format(time), RFC3339.milliseconds(time)!] {
                let style =
                    (try? Date.ISO8601FormatStyle().parse(text)) ?? (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
                #expect(RFC3339.parse(text) == style, "\(text)")
            }
        }
    }

    @Test(
        "any other form is left to the format style",
        arguments: [
            "2026-12-04T18:41:18+01:00", "2026-12-04T18:41:18.5Z", "2026-12-04t18:41:18Z", "2026-02-30T00:00:00Z",
            "2026-12-04T24:00:00Z", "2026-12-04 18:41:18Z", "20261204T184118Z", "", "yesterday", "2026-12-04T18:41:1xZ",
        ]
    )
    func otherForms(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test("times before 1900 or after 9999 are left to the format style")
    func outOfRange() {
        #expect(RFC3339.wholeSeconds(Date(timeIntervalSince1970: -2_208_988_801)) == nil)
        #expect(RFC3339.milliseconds(Date(timeIntervalSince1970: -2_208_988_800.001)) == nil)
        #expect(RFC3339.wholeSeconds(Date(timeIntervalSince1970: 253_402_300_800)) == nil)
        #expect(RFC3339.milliseconds(Date(timeIntervalSince1970: 253_402_300_799.9996)) == nil)
        #expect(RFC3339.parse("1899-12-31T23:59:59Z") == nil)
        #expect(RFC3339.wholeSeconds(Date.distantPast) == nil)
    }
}
