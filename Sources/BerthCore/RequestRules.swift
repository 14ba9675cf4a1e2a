public import FoundationEssentials

/// What a reservation's purpose allows on its model. Training reserves a base model that
/// accepts customization; spillover to the on-demand pool is for inference on base models only
/// (custom models are never served on demand).
public enum ReservationRules {
    public static func purposeProblem(_ purpose: Purpose, model: Model, spillover: Bool) -> FieldError? {
        if purpose == .training {
            if model.isCustom {
                return FieldError(
                    field: "model",
                    message: "'\(model.id)' is a custom model; training reservations are made on its base model '\(model.family)'"
                )
            }
            if model.customizations.isEmpty {
                return FieldError(
                    field: "purpose",
                    message: "'\(model.id)' accepts no customization, so it cannot be reserved for training; reserve it with purpose inference"
                )
            }
        }
        if spillover {
            if purpose != .inference {
                return FieldError(field: "spillover", message: "only inference reservations spill over to the on-demand pool")
            }
            if model.isCustom || !model.onDemand {
                return FieldError(
                    field: "spillover",
                    message: "'\(model.id)' is not served on demand, so calls over budget cannot spill over; leave out spillover"
                )
            }
        }
        return nil
    }
}

/// The rules of a job submission that need nothing but the request and the model.
public enum SubmissionRules {
    /// Fields only jobs that make a model take, in the order a refusal names them.
    public static let modelMakingFields = ["model_name", "epochs", "batch_size", "learning_rate", "warmup_steps", "validation_data"]

    public static let priorities = -1000...1000

    /// The first field `kind` does not take among those given: batch inference makes no model,
    /// so it takes no model name, no hyperparameters and no validation data. A kind that makes
    /// a model needs its name.
    public static func fieldProblem(kind: JobKind, given: Set<String>) -> FieldError? {
        if kind == .batchInference {
            return modelMakingFields.first(where: given.contains).map { field in
                FieldError(field: field, message: "batch-inference takes no \(field); leave it out")
            }
        }
        guard given.contains("model_name") else {
            return FieldError(field: "model_name", message: "a \(kind.rawValue) job makes a custom model: name it with --model-name")
        }
        return nil
    }

    public static func priorityProblem(_ priority: Int) -> FieldError? {
        priorities.contains(priority) ? nil : FieldError(field: "priority", message: "must be between -1000 and 1000, got \(priority)")
    }

    /// A custom model's name becomes a model id: up to 128 letters, digits and `._:-`,
    /// starting with a letter or digit.
    public static func modelNameProblem(_ name: String) -> FieldError? {
        // Byte by byte: every allowed character is ASCII, so one byte is one character.
        func isLetterOrDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        let bytes = name.utf8
        guard let first = bytes.first, isLetterOrDigit(first), bytes.count <= 128,
            bytes.allSatisfy({ isLetterOrDigit($0) || "._:-".utf8.contains($0) })
        else {
            return FieldError(
                field: "model_name",
                message: "'\(name)' is not a valid model name: use up to 128 letters, digits and . _ : -, starting with a letter or digit"
            )
        }
        return nil
    }

    /// The hyperparameters a job runs with: what was given, the model's defaults for the rest;
    /// or every value outside the model's ranges.
    public static func hyperparameters(
        epochs: Int?,
        batchSize: Int?,
        learningRate: Double?,
        warmupSteps: Int?,
        model: Model
    ) -> Result<HyperparameterValues, HyperparameterProblems> {
        let defaults = HyperparameterCheck.defaults(for: model.hyperparameters)
        let values = HyperparameterValues(
            epochs: epochs ?? defaults.epochs,
            batchSize: batchSize ?? defaults.batchSize,
            learningRate: learningRate ?? defaults.learningRate,
            warmupSteps: warmupSteps ?? defaults.warmupSteps
        )
        let problems = HyperparameterCheck.problems(
            epochs: values.epochs,
            batchSize: values.batchSize,
            learningRate: values.learningRate,
            warmupSteps: values.warmupSteps,
            ranges: model.hyperparameters,
            model: model.id
        )
        return problems.isEmpty ? .success(values) : .failure(HyperparameterProblems(problems: problems))
    }
}

/// Every hyperparameter outside its model's range, told together so one retry fixes them all.
public struct HyperparameterProblems: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [FieldError]
    public var description: String { problems.map(\.description).joined(separator: "; ") }
}

/// The rules of a call that need nothing but the request, the model and the reservation.
public enum CallRules {
    /// What a call may generate when it does not say, if the model allows that many.
    public static let defaultMaxTokens = 64

    /// The tokens a call is sized at: its `max_tokens` (or the default) and the estimate it is
    /// charged, prompt included; or why the model cannot take it.
    public static func size(maxTokens asked: Int?, promptTokens: Int, model: Model) -> Result<(maxTokens: Int, estimate: Int), FieldError> {
        let maxTokens = asked ?? min(defaultMaxTokens, model.maxTokens)
        guard maxTokens >= 1 else { return .failure(FieldError(field: "max_tokens", message: "must be at least 1")) }
        guard maxTokens <= model.maxTokens else {
            return .failure(
                FieldError(field: "max_tokens", message: "\(maxTokens) is over \(model.id)'s max_tokens of \(model.maxTokens); ask for at most that")
            )
        }
        // Both are at most the model's max_tokens now, so the sum cannot overflow (a
        // max_tokens of Int.max once crashed berthd here).
        guard promptTokens <= model.maxTokens - maxTokens else {
            return .failure(
                FieldError(
                    field: "prompt",
                    message:
                        "\(promptTokens) prompt tokens + max_tokens \(maxTokens) is over \(model.id)'s max_tokens of \(model.maxTokens); shorten the prompt or lower max_tokens"
                )
            )
        }
        return .success((maxTokens, promptTokens + maxTokens))
    }

    /// Whether a call over its reservation's budget goes to the on-demand pool instead of being
    /// throttled: only if the reservation asked for it and the model is a base model served on
    /// demand.
    public static func spillsOver(_ reservation: Reservation, model: Model) -> Bool {
        reservation.spillover && !model.isCustom && model.onDemand
    }

    /// A reservation's budget in tokens per minute.
    public static func budget(_ reservation: Reservation, model: Model) -> Int {
        reservation.modelUnits * model.tokensPerMinute
    }

    /// What a served call costs: on-demand calls pay per token; provisioned ones are paid for
    /// by their reservation.
    public static func cost(tier: ServiceTier, inputTokens: Int, outputTokens: Int, price: ModelPrice) -> Double {
        guard tier == .onDemand else { return 0 }
        return Double(inputTokens) / 1000 * (price.onDemandInputPer1k ?? 0) + Double(outputTokens) / 1000 * (price.onDemandOutputPer1k ?? 0)
    }
}

/// A window `[from, to)` that a request names with `from` and `to` (absent or empty: the
/// default): the one check `GET /v1/capacity` and `GET /v1/usage` share.
public enum WindowRules {
    public static func window(
        from fromText: String?,
        to toText: String?,
        now: Date,
        defaultFrom: Date,
        defaultTo: (Date) -> Date,
        longest: TimeInterval,
        tooLong: String,
        example: String
    ) -> Result<(from: Date, to: Date), FieldError> {
        func time(_ name: String, _ text: String?, default value: Date) -> Result<Date, FieldError> {
            guard let text, !text.isEmpty else { return .success(value) }
            guard let date = TimeExpression.parse(text, now: now) else {
                return .failure(
                    FieldError(field: name, message: "'\(text)' is not a time: use now, RFC 3339 (\(example)) or an offset such as +2h or -7d")
                )
            }
            return .success(date)
        }
        let from: Date
        let to: Date
        switch time("from", fromText, default: defaultFrom) {
        case .success(let date): from = date
        case .failure(let problem): return .failure(problem)
        }
        switch time("to", toText, default: defaultTo(from)) {
        case .success(let date): to = date
        case .failure(let problem): return .failure(problem)
        }
        guard to > from else { return .failure(FieldError(field: "to", message: "must be after from (\(TimeExpression.format(from)))")) }
        guard to.timeIntervalSince(from) <= longest else { return .failure(FieldError(field: "to", message: tooLong)) }
        return .success((from, to))
    }
}
