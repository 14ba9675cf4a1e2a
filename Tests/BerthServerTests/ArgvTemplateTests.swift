import BerthExecutors
import Testing

@Suite("Runner argv templates")
struct ArgvTemplateTests {
    @Test("placeholders are filled in, each argument stays one argument")
    func expands() throws {
        let template = ArgvTemplate(["berth-runner", "serve", "--model-dir", "{model_dir}", "--port={port}"])
        #expect(template.placeholders == ["model_dir", "port"])
        let argv = try template.expand(["model_dir": "/tmp/my model; rm -rf /", "port": "8123"])
        #expect(argv == ["berth-runner", "serve", "--model-dir", "/tmp/my model; rm -rf /", "--port=8123"])
    }

    @Test("a value is not expanded again")
    func noRecursion() throws {
        #expect(try ArgvTemplate(["{a}"]).expand(["a": "{b}", "b": "x"]) == ["{b}"])
    }

    @Test("an unknown placeholder is refused, naming it")
    func unknown() {
        #expect(throws: ArgvTemplate.UnknownPlaceholder(name: "gpu", argument: 1)) {
            try ArgvTemplate(["run", "{gpu}"]).expand([:])
        }
    }
}
