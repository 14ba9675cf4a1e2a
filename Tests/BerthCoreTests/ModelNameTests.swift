import BerthCore
import Testing

@Suite("Custom model names")
struct ModelNameTests {
    @Test(
        "accepted: letters, digits and . _ : -, starting with a letter or digit, up to 128",
        arguments: [
            "m", "7", "acme.nova-ft:v1_2", "Z" + String(repeating: "a", count: 127),
        ]
    )
    func accepted(_ name: String) {
        #expect(SubmissionRules.modelNameProblem(name) == nil)
    }

    @Test(
        "refused, naming model_name",
        arguments: [
            "", "-lead", ".lead", "_lead", ":lead", "has space", "slash/in", "../up", "naïve", "é", "١٢", "a\u{301}",
            "tab\tin", "nul\0in", "Z" + String(repeating: "a", count: 128), "emoji😀",
        ]
    )
    func refused(_ name: String) {
        #expect(SubmissionRules.modelNameProblem(name)?.field == "model_name", "\(name.debugDescription) was accepted")
    }
}
