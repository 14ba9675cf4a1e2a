import ArgumentParser
import BerthWire
import Foundation

/// `--spec FILE`, else `$BERTH_JOB_SPEC`: the job berthd asks for.
struct SpecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The job spec (JSON) berthd wrote; default $BERTH_JOB_SPEC.", valueName: "file"))
    var spec: String?

    func load() throws -> JobSpec {
        guard let path = spec ?? ProcessInfo.processInfo.environment["BERTH_JOB_SPEC"], !path.isEmpty else {
            throw RunnerFailure.invalid("no job spec: pass --spec FILE or set BERTH_JOB_SPEC")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RunnerFailure.invalid("cannot read the job spec \(path): \(error.localizedDescription)")
        }
        do {
            return try Wire.decoder().decode(JobSpec.self, from: data)
        } catch {
            throw RunnerFailure.invalid("the job spec \(path) is not a valid JobSpec: \(RunnerFailure.describe(error))")
        }
    }
}
