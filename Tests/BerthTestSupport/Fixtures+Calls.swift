public import BerthStore
public import Foundation

extension Fixtures {
    /// A call of alice's to the text model on demand, served: 3 tokens in, 4 out.
    public static func onDemandCall(at: Date) -> InvocationRecord {
        InvocationRecord(
            at: at,
            owner: "alice",
            target: textModel.id,
            reservationID: nil,
            model: textModel.id,
            tier: .onDemand,
            outcome: .served,
            inputTokens: 3,
            outputTokens: 4,
            latencyMs: 1.5,
            cost: 0.01,
            budgetPerMinute: 0
        )
    }
}
