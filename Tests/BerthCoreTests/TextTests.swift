import BerthCore
import Foundation
import Testing

/// The text functions that stand in for Foundation's in the CLI's modules must say what
/// Foundation's said: tables, learning rates and day keys are printed through them.
@Suite("Text functions without Foundation")
struct TextTests {
    @Test(
        "CFormat writes what String(format:) writes, a text longer than its first buffer included",
        arguments: [
            ("%.12f", 0.000_001 as Double), ("%.1f %%", 12.25), ("%.10g", 1.5e-7), ("%.4f", -3.0),
            ("%.70f", 1.0 / 3.0),
        ]
    )
    func formats(format: String, value: Double) {
        #expect(CFormat.string(format, value) == String(format: format, value))
    }

    @Test("CFormat pads integers as a day key needs them")
    func integers() {
        #expect(CFormat.string("%04ld-%02ld-%02ld", 2026, 12, 5) == "2026-12-05")
    }

    @Test(
        "trimmingBlanks drops spaces and tabs as CharacterSet.whitespaces did, and keeps line breaks; trimmingWhitespace drops both",
        arguments: [" \t x y\u{00A0} ", "\n x \n", "", "   ", "\u{2003}mid\u{2003}", "a\r\n"]
    )
    func trimming(text: String) {
        #expect(text.trimmingBlanks() == text.trimmingCharacters(in: .whitespaces))
        #expect(text.trimmingWhitespace() == text.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(text[...].trimmingBlanks() == text.trimmingCharacters(in: .whitespaces))
    }
}
