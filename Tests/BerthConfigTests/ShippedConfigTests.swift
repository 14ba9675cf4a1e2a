import BerthCore
import Testing

@testable import BerthConfig

/// `config/berthd.toml` must run as shipped on a laptop.
@Suite("The shipped config")
struct ShippedConfigTests {
    let config: DaemonConfig

    init() throws {
        config = try DaemonConfig.load(path: ConfigFixture.shippedConfigPath)
    }

    @Test("parses with no problem")
    func parsesWithNoProblem() throws {
        let text = try String(contentsOfFile: ConfigFixture.shippedConfigPath, encoding: .utf8)
        #expect(ConfigFixture.problems(text, sourcePath: ConfigFixture.shippedConfigPath).isEmpty)
    }

    @Test("has eight dedicated CPU units cpu-0 to cpu-7 on devices 0 to 7, and two shared ones")
    func units() {
        #expect(
            config.dedicatedUnits
                == (0..<8).map { (index: Int) in ComputeUnit(id: "cpu-\(index)", kind: "cpu", device: index, pool: .dedicated, cpuShare: 0.25) }
        )
        #expect(config.sharedUnits.map(\.id) == ["cpu-shared-0", "cpu-shared-1"])
        #expect(config.units.allSatisfy { $0.kind == "cpu" })
    }

    @Test("names the standard socket, database, group and admins")
    func daemon() {
        #expect(config.daemon.socket == "/run/berth/berthd.sock")
        #expect(config.daemon.database == "/var/lib/berth/berth.db")
        #expect(config.daemon.socketGroup == "berth")
        #expect(config.daemon.admins == ["root"])
        #expect(config.daemon.adminGroups == ["berth-admin"])
        #expect(config.daemon.logLevel == "info")
        #expect(config.sourcePath == ConfigFixture.shippedConfigPath)
    }

    @Test("runs the reference runner for every kind of work")
    func runners() {
        #expect(config.runners.train == ["berth-runner", "train", "--spec", "{spec}"])
        #expect(config.runners.batch == ["berth-runner", "batch", "--spec", "{spec}"])
        #expect(config.runners.serve == ["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}", "--model-id", "{model}"])
    }

    struct CatalogEntry: Sendable, CustomTestStringConvertible {
        var id: String
        var provider: String
        var inputs: [Modality]
        var outputs: [Modality]
        var maxTokens: Int
        var customizations: Set<Customization>
        var testDescription: String { "\(id) follows its catalog entry" }
    }

    @Test(
        "Each base model follows its catalog entry",
        arguments: [
            CatalogEntry(
                id: "amazon.nova-micro-v1:0",
                provider: "Amazon",
                inputs: [.text],
                outputs: [.text],
                maxTokens: 128_000,
                customizations: [.fineTuning, .distillation]
            ),
            CatalogEntry(
                id: "anthropic.claude-3-5-haiku-20241022-v1:0",
                provider: "Anthropic",
                inputs: [.text, .image],
                outputs: [.text],
                maxTokens: 200_000,
                customizations: [.fineTuning]
            ),
            CatalogEntry(
                id: "amazon.nova-reel-v1:0",
                provider: "Amazon",
                inputs: [.text, .image],
                outputs: [.video],
                maxTokens: 512,
                customizations: []
            ),
            CatalogEntry(
                id: "meta.llama3-8b-instruct-v1:0",
                provider: "Meta",
                inputs: [.text],
                outputs: [.text],
                maxTokens: 8192,
                customizations: [.fineTuning, .continuedPretraining]
            ),
            CatalogEntry(
                id: "amazon.titan-text-express-v1",
                provider: "Amazon",
                inputs: [.text],
                outputs: [.text],
                maxTokens: 8192,
                customizations: [.fineTuning, .continuedPretraining]
            ),
        ]
    )
    func catalogEntry(_ entry: CatalogEntry) throws {
        let model = try #require(config.models.first { $0.id == entry.id })
        #expect(model.provider == entry.provider)
        #expect(model.inputModalities == entry.inputs)
        #expect(model.outputModalities == entry.outputs)
        #expect(model.maxTokens == entry.maxTokens)
        #expect(Set(model.customizations) == entry.customizations)
        #expect(!model.isCustom)
    }

    @Test("Nova Reel can be called on demand")
    func novaReelOnDemand() throws {
        let reel = try #require(config.models.first { $0.id == "amazon.nova-reel-v1:0" })
        #expect(reel.onDemand)
    }

    @Test("every model fits the pool and is priced for every commitment, cheaper for longer terms")
    func sizingAndPrices() {
        #expect(config.models.count >= 5)
        for model in config.models {
            #expect((1...2).contains(model.unitsPerModelUnit), "\(model.id)")
            #expect(model.tokensPerMinute > 0, "\(model.id)")
            let none = model.price.modelUnitHour[.none] ?? 0
            let oneMonth = model.price.modelUnitHour[.oneMonth] ?? 0
            let sixMonths = model.price.modelUnitHour[.sixMonths] ?? 0
            #expect(none > oneMonth && oneMonth > sixMonths && sixMonths > 0, "\(model.id)")
            if model.onDemand {
                #expect((model.price.onDemandInputPer1k ?? 0) > 0, "\(model.id)")
                #expect((model.price.onDemandOutputPer1k ?? 0) > 0, "\(model.id)")
            }
            let ranges = model.hyperparameters
            #expect(
                ranges.epochs.lowerBound >= 1 && ranges.batchSize.lowerBound >= 1 && ranges.learningRate.lowerBound > 0,
                "\(model.id)"
            )
        }
    }
}
