import BerthCore
import BerthTestSupport
import Foundation
import Testing

@Suite("Request rules")
struct RequestRulesTests {
    static let base = Fixtures.textModel
    static var custom: Model {
        var model = base
        model.id = "alice-ft"
        model.baseModel = base.id
        model.owner = "alice"
        model.customization = .fineTuning
        return model
    }
    static var notOnDemand: Model {
        var model = base
        model.onDemand = false
        return model
    }
    static var noCustomization: Model {
        var model = base
        model.customizations = []
        return model
    }
    static var small: Model {
        var model = base
        model.maxTokens = 100
        return model
    }

    @Test(
        "what a reservation's purpose allows on its model",
        arguments: [
            (Purpose.inference, base, false, nil),
            (.inference, base, true, nil),
            (.training, base, false, nil),
            (.training, custom, false, "model"),
            (.training, noCustomization, false, "purpose"),
            (.training, base, true, "spillover"),
            (.inference, custom, true, "spillover"),
            (.inference, notOnDemand, true, "spillover"),
        ] as [(Purpose, Model, Bool, String?)]
    )
    func purpose(_ purpose: Purpose, _ model: Model, _ spillover: Bool, _ refusedField: String?) {
        #expect(ReservationRules.purposeProblem(purpose, model: model, spillover: spillover)?.field == refusedField)
    }

    @Test(
        "which kinds take which fields",
        arguments: [
            (JobKind.batchInference, Set<String>(), nil),
            (.batchInference, ["model_name"], "model_name"),
            (.batchInference, ["learning_rate", "epochs"], "epochs"),
            (.batchInference, ["validation_data"], "validation_data"),
            (.fineTuning, ["model_name", "epochs", "validation_data"], nil),
            (.fineTuning, ["epochs"], "model_name"),
            (.distillation, [], "model_name"),
        ] as [(JobKind, Set<String>, String?)]
    )
    func fields(_ kind: JobKind, _ given: Set<String>, _ refusedField: String?) {
        #expect(SubmissionRules.fieldProblem(kind: kind, given: given)?.field == refusedField)
    }

    @Test("a priority from -1000 to 1000", arguments: [(-1000, true), (0, true), (1000, true), (-1001, false), (1001, false)])
    func priority(_ priority: Int, _ accepted: Bool) {
        #expect((SubmissionRules.priorityProblem(priority) == nil) == accepted)
    }

    @Test("hyperparameters left out take the model's defaults")
    func defaults() throws {
        let values = try SubmissionRules.hyperparameters(epochs: nil, batchSize: nil, learningRate: nil, warmupSteps: nil, model: Self.base).get()
        let defaults = HyperparameterCheck.defaults(for: Self.base.hyperparameters)
        #expect(
            values
                == HyperparameterValues(
                    epochs: defaults.epochs,
                    batchSize: defaults.batchSize,
                    learningRate: defaults.learningRate,
                    warmupSteps: defaults.warmupSteps
                )
        )
    }

    @Test("hyperparameters given are kept")
    func given() throws {
        let values = try SubmissionRules.hyperparameters(epochs: 3, batchSize: 4, learningRate: 0.0001, warmupSteps: 5, model: Self.base).get()
        #expect(values == HyperparameterValues(epochs: 3, batchSize: 4, learningRate: 0.0001, warmupSteps: 5))
    }

    @Test("every hyperparameter out of range is named at once")
    func outOfRange() {
        guard
            case .failure(let problems) = SubmissionRules.hyperparameters(
                epochs: 0,
                batchSize: nil,
                learningRate: 0.5,
                warmupSteps: nil,
                model: Self.base
            )
        else {
            Issue.record("out-of-range values were accepted")
            return
        }
        #expect(problems.problems.map(\.field).sorted() == ["epochs", "learning_rate"])
    }

    @Test(
        "a call's size: max_tokens, its default and the prompt",
        arguments: [
            (nil, 10, small, 64, 74, nil),
            (
                nil, 10,
                {
                    var m = small
                    m.maxTokens = 50
                    return m
                }(), 50, nil, "prompt"
            ),
            (
                nil, 0,
                {
                    var m = small
                    m.maxTokens = 50
                    return m
                }(), 50, 50, nil
            ),
            (90, 10, small, 90, 100, nil),
            (90, 11, small, nil, nil, "prompt"),
            (0, 1, small, nil, nil, "max_tokens"),
            (101, 1, small, nil, nil, "max_tokens"),
            (Int.max, 1, small, nil, nil, "max_tokens"),
        ] as [(Int?, Int, Model, Int?, Int?, String?)]
    )
    func size(_ asked: Int?, _ prompt: Int, _ model: Model, _ maxTokens: Int?, _ estimate: Int?, _ refusedField: String?) {
        switch CallRules.size(maxTokens: asked, promptTokens: prompt, model: model) {
        case .success(let size):
            #expect(refusedField == nil)
            #expect(size.maxTokens == maxTokens)
            #expect(size.estimate == estimate)
        case .failure(let problem):
            #expect(problem.field == refusedField)
        }
    }

    @Test(
        "spillover only where asked for, to a base model served on demand",
        arguments: [
            (true, base, true), (false, base, false), (true, custom, false), (true, notOnDemand, false),
        ] as [(Bool, Model, Bool)]
    )
    func spillover(_ asked: Bool, _ model: Model, _ spills: Bool) {
        var reservation = Fixtures.reservation(1, units: 1, start: Fixtures.epoch, end: nil)
        reservation.spillover = asked
        #expect(CallRules.spillsOver(reservation, model: model) == spills)
    }

    @Test("on-demand calls pay per token; provisioned ones are paid by their reservation")
    func cost() {
        let price = ModelPrice(modelUnitHour: [:], onDemandInputPer1k: 0.5, onDemandOutputPer1k: 2)
        #expect(CallRules.cost(tier: .onDemand, inputTokens: 2000, outputTokens: 500, price: price) == 2)
        #expect(CallRules.cost(tier: .provisioned, inputTokens: 2000, outputTokens: 500, price: price) == 0)
    }
}

@Suite("The window of a capacity or usage request")
struct WindowRulesTests {
    static let now = Fixtures.epoch

    static func window(_ from: String?, _ to: String?) -> Result<(from: Date, to: Date), FieldError> {
        WindowRules.window(
            from: from,
            to: to,
            now: now,
            defaultFrom: now.addingTimeInterval(-3600),
            defaultTo: { $0.addingTimeInterval(600) },
            longest: 86_400,
            tooLong: "at most a day",
            example: "2026-12-01T09:00:00Z"
        )
    }

    @Test("absent or empty, from and to are the defaults; to's default follows from")
    func defaults() throws {
        let (from, to) = try Self.window(nil, "").get()
        #expect(from == Self.now.addingTimeInterval(-3600))
        #expect(to == from.addingTimeInterval(600))
        let (later, end) = try Self.window("+1h", nil).get()
        #expect(later == Self.now.addingTimeInterval(3600) && end == later.addingTimeInterval(600))
    }

    @Test(
        "a bad window names the field and what to write",
        arguments: [
            ("yesterday", nil, "from", "'yesterday' is not a time"),
            (nil, "soon", "to", "'soon' is not a time"),
            ("+1h", "now", "to", "must be after from"),
            ("-2d", "now", "to", "at most a day"),
        ] as [(String?, String?, String, String)]
    )
    func refused(_ from: String?, _ to: String?, field: String, message: String) {
        guard case .failure(let problem) = Self.window(from, to) else {
            Issue.record("accepted \(String(describing: from)) to \(String(describing: to))")
            return
        }
        #expect(problem.field == field)
        #expect(problem.message.contains(message), "\(problem)")
    }
}
