public import BerthStore
public import Foundation

extension Fixtures {
    /// A queued one-unit fine-tuning job of alice's on the text model, on reservation `id`.
    public static func queuedJob(
        _ name: String,
        on id: Int64,
        priority: Int = 0,
        submittedAt: Date,
        modelName: String? = nil
    ) -> JobRecord {
        JobRecord(
            name: name,
            owner: "alice",
            kind: .fineTuning,
            reservationId: id,
            model: textModel.id,
            baseModel: textModel.id,
            priority: priority,
            modelUnits: 1,
            unitsNeeded: 1,
            hyperparameters: nil,
            data: "/d",
            validationData: nil,
            output: "/o",
            modelName: modelName,
            seed: 1,
            submittedAt: submittedAt,
            logPath: "/l",
            callerUid: 0,
            callerGid: 0
        )
    }
}
