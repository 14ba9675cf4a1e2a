import BerthCore
import BerthStore
import BerthWire
import Foundation

/// Core values as the API shows them.
enum Views {
    static func model(_ m: Model) -> ModelView {
        let h = m.hyperparameters
        return ModelView(
            id: m.id,
            provider: m.provider,
            inputModalities: m.inputModalities.map(\.rawValue),
            outputModalities: m.outputModalities.map(\.rawValue),
            maxTokens: m.maxTokens,
            onDemand: m.isCustom ? false : m.onDemand,
            customizations: m.customizations.map(\.rawValue),
            custom: m.isCustom,
            baseModel: m.baseModel,
            owner: m.owner,
            unitsPerModelUnit: m.unitsPerModelUnit,
            tokensPerMinute: m.tokensPerMinute,
            hyperparameters: HyperparametersView(
                epochs: .init(min: h.epochs.lowerBound, max: h.epochs.upperBound),
                batchSize: .init(min: h.batchSize.lowerBound, max: h.batchSize.upperBound),
                learningRate: .init(min: h.learningRate.lowerBound, max: h.learningRate.upperBound),
                warmupSteps: .init(min: h.warmupSteps.lowerBound, max: h.warmupSteps.upperBound)
            ),
            price: PriceView(
                modelUnitHour: Dictionary(uniqueKeysWithValues: m.price.modelUnitHour.map { ($0.key.rawValue, $0.value) }),
                onDemandInputPerThousand: m.price.onDemandInputPer1k,
                onDemandOutputPerThousand: m.price.onDemandOutputPer1k
            ),
            customization: m.customization?.rawValue,
            createdAt: m.createdAt,
            artifactDir: m.artifactDir,
            finalMetrics: m.isCustom ? m.finalMetrics : nil,
            jobId: m.jobID
        )
    }

    static func reservation(_ r: Reservation, leases: [Lease]) -> ReservationView {
        var view = ReservationView(
            name: r.name,
            owner: r.owner,
            model: r.model,
            purpose: r.purpose.rawValue,
            modelUnits: r.modelUnits,
            units: r.units,
            commitment: r.commitment.rawValue,
            start: r.start,
            end: r.end,
            status: r.status.rawValue,
            waiting: r.waiting,
            spillover: r.spillover,
            createdAt: r.createdAt,
            endedAt: r.endedAt,
            statusReason: r.statusReason,
            leases: leases.map { LeaseView(unit: $0.unit, reservation: r.name, start: $0.start, end: $0.end) }
        )
        if r.status == .pending && !r.pinnedUnits.isEmpty { view.pinnedUnits = r.pinnedUnits }
        return view
    }

    static func reservation(_ r: Reservation, in tx: LedgerTransaction) throws -> ReservationView {
        reservation(r, leases: try tx.leases(reservationID: r.id))
    }
}
