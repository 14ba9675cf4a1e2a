/// A small corpus built into the runner, so a base model exists with no files and no downloads.
/// A few hundred words of plain English about harbours, ships and scheduled work.
public enum BuiltInCorpus {
    public static let sentences: [String] = [
        "The harbour opens at dawn and the first ship waits for a free berth.",
        "A berth is a place where a ship can stay while it loads and unloads.",
        "The harbour master keeps a calendar of every berth and every ship.",
        "Each ship must reserve a berth before it arrives at the harbour.",
        "When the calendar is full, the ship waits outside until a berth is free.",
        "A reservation holds a berth for a fixed time, from its start to its end.",
        "The crew unloads the cargo quickly, because the next ship is already waiting.",
        "Cranes lift the containers from the deck and set them on the quay.",
        "The pilot guides the ship through the narrow channel into the harbour.",
        "At night the lights of the harbour shine on the calm water.",
        "The weather was clear, and the sea was quiet all morning.",
        "A storm came from the west, and the ships stayed in the harbour.",
        "The captain checked the charts and planned the route along the coast.",
        "Good planning means that no berth is ever given to two ships at once.",
        "The scheduler reads the calendar, finds the free capacity, and makes a plan.",
        "If there is not enough capacity, the request waits in the queue.",
        "Jobs in the queue run in order of priority, then in order of arrival.",
        "A small model learns which words tend to follow other words.",
        "The model reads the text, counts the words, and predicts the next word.",
        "Training the model on more text makes its predictions better.",
        "The loss falls as the model learns, and then it stays nearly flat.",
        "We keep a ledger of every hour used and every token served.",
        "The ledger shows how much capacity was reserved and how much was used.",
        "An idle berth still costs money, so the harbour tries to keep every berth busy.",
        "The ship left the harbour in the afternoon with a full load of grain.",
        "Fishing boats return in the evening and tie up along the old quay.",
        "The old lighthouse stands on the rocks at the end of the pier.",
        "Gulls follow the boats and cry over the water.",
        "The tide rises twice a day, and the deep ships wait for high water.",
        "A tug pushes the heavy ship gently against the quay.",
        "The workers start early, and they finish when the last container is on the quay.",
        "Please reserve your berth in advance, and tell us when your ship will arrive.",
        "You can update a reservation, add more time, or release it when the work is done.",
        "The report lists each reservation, the hours it held, and the hours it used.",
        "Every answer says which berth served the ship and how long the work took.",
        "The plan is simple: reserve the capacity, run the work, and release what is left.",
        "Small models are fast, and they run on any machine without special hardware.",
        "The river meets the sea at the harbour, and the water there is brown and slow.",
        "On a clear day you can see the islands from the top of the hill.",
        "The market by the harbour sells fresh fish, bread, and fruit every morning.",
    ]
}

extension NGramModel {
    /// The base model of a catalog entry when it has no files: the built-in corpus, learned
    /// in an order (and with about one sentence in eight left out) drawn from the model's id,
    /// so different base models differ a little and the same id is always the same model.
    public static func builtInBase(modelID: String) -> NGramModel {
        let seed = SplitMix64.seed(from: modelID)
        var random = SplitMix64(seed: seed)
        let chosen = BuiltInCorpus.sentences.filter { _ in random.next() % 8 != 0 }
        let session = TrainingSession(
            model: NGramModel(),
            trainingTexts: chosen.isEmpty ? BuiltInCorpus.sentences : chosen,
            validationTexts: [],
            schedule: TrainingSchedule(epochs: 3, batchSize: 4, learningRate: TrainingSchedule.referenceLearningRate / 2, warmupSteps: 0),
            seed: seed
        )
        return session.run().model
    }
}
