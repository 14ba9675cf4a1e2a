import ArgumentParser
import BerthClient
import BerthWire

extension Berth {
    struct Models: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "models",
            abstract: "List the base and custom models, or show one in full."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A model id, to show that model in full.")
        var id: String?

        func run() throws {
            if let id {
                let reply = try global.call(
                    ModelView.self,
                    "GET",
                    "/v1/models/" + PercentEncoding.pathSegment(id)
                )
                global.show(reply, human: Self.detail)
            } else {
                let reply = try global.call(ModelList.self, "GET", "/v1/models")
                global.show(reply) { list in
                    var table = Table(
                        "id",
                        "provider",
                        "input",
                        "output",
                        "max tokens",
                        "on demand",
                        "customizations",
                        "base model"
                    )
                    for model in list.models {
                        table.append(
                            model.id,
                            model.provider,
                            Format.list(model.inputModalities),
                            Format.list(model.outputModalities),
                            String(model.maxTokens),
                            Format.yesNo(model.onDemand),
                            Format.list(model.customizations),
                            Format.text(model.baseModel)
                        )
                    }
                    return table.render()
                }
            }
        }

        static func detail(_ model: ModelView) -> String {
            let hyper = model.hyperparameters
            func range<T>(_ range: RangeView<T>, _ format: (T) -> String) -> String {
                "\(format(range.min))–\(format(range.max))"
            }
            let order = ["none", "1m", "6m"]
            let commitments = model.price.modelUnitHour.keys.sorted {
                (order.firstIndex(of: $0) ?? order.count, $0) < (order.firstIndex(of: $1) ?? order.count, $1)
            }
            let unitHour = commitments.map { "\($0): \(Format.number(model.price.modelUnitHour[$0]))" }
            let fields: [(String, String)] = [
                ("id", model.id),
                ("provider", model.provider),
                ("custom", Format.yesNo(model.custom)),
                ("base model", Format.text(model.baseModel)),
                ("owner", Format.text(model.owner)),
                ("input", Format.list(model.inputModalities)),
                ("output", Format.list(model.outputModalities)),
                ("max tokens", String(model.maxTokens)),
                ("on demand", Format.yesNo(model.onDemand)),
                ("customizations", Format.list(model.customizations)),
                ("units per model unit", String(model.unitsPerModelUnit)),
                ("tokens per minute", String(model.tokensPerMinute)),
                ("epochs", range(hyper.epochs, String.init)),
                ("batch size", range(hyper.batchSize, String.init)),
                ("learning rate", range(hyper.learningRate, { Format.number($0) })),
                ("warmup steps", range(hyper.warmupSteps, String.init)),
                ("price per model unit-hour", unitHour.isEmpty ? "-" : unitHour.joined(separator: ", ")),
                ("on-demand price per 1k input", Format.number(model.price.onDemandInputPerThousand)),
                ("on-demand price per 1k output", Format.number(model.price.onDemandOutputPerThousand)),
            ]
            var custom: [(String, String)] = []
            if model.custom {
                custom = [
                    ("customization", Format.text(model.customization)),
                    ("created", model.createdAt.map { Format.time($0) } ?? "-"),
                    ("artifacts", Format.text(model.artifactDir)),
                    ("made by job", model.jobId.map(String.init) ?? "-"),
                    ("final training loss", Format.number(model.finalMetrics?["training_loss"])),
                    ("final validation loss", Format.number(model.finalMetrics?["validation_loss"])),
                ]
            }
            return Table.fields(custom.isEmpty ? fields : Array(fields.prefix(5)) + custom + fields.dropFirst(5))
        }
    }
}
