public import FoundationEssentials

/// Capacity promised to one reservation over `[start, end)`; `end == nil` is open-ended.
public struct Booking: Sendable, Equatable {
    public var reservationID: Int64
    public var start: Date
    public var end: Date?
    public var units: Int

    public init(reservationID: Int64, start: Date, end: Date?, units: Int) {
        self.reservationID = reservationID
        self.start = start
        self.end = end
        self.units = units
    }

    func overlaps(_ from: Date, _ to: Date?) -> Bool {
        (end.map { $0 > from } ?? true) && (to.map { start < $0 } ?? true)
    }

    func covers(_ t: Date) -> Bool {
        start <= t && (end.map { t < $0 } ?? true)
    }
}

/// A stretch of time with a constant number of free dedicated units.
public struct FreeStep: Sendable, Equatable {
    public var start: Date
    public var end: Date
    public var free: Int

    public init(start: Date, end: Date, free: Int) {
        self.start = start
        self.end = end
        self.free = free
    }
}

/// Dedicated units over time: how many are promised, and so how many are free, at every moment.
/// Units are interchangeable, so counting is enough to admit; which unit goes to whom is
/// decided at activation by the planner.
public struct CapacityCalendar: Sendable, Equatable {
    public var total: Int
    public var bookings: [Booking]

    public init(total: Int, bookings: [Booking]) {
        self.total = total
        self.bookings = bookings
    }

    public init(total: Int, reservations: [Reservation]) {
        self.init(
            total: total,
            bookings: reservations.filter(\.holdsCapacity).map {
                Booking(reservationID: $0.id, start: $0.start, end: $0.end, units: $0.units)
            }
        )
    }

    /// Units promised at instant `t`.
    public func used(at t: Date, excluding: Int64? = nil) -> Int {
        bookings.reduce(0) { sum, b in
            b.reservationID != excluding && b.covers(t) ? sum + b.units : sum
        }
    }

    /// The fewest units free at any moment of `[from, to)`; `to == nil` means for ever.
    /// Use only rises where a booking starts, so those instants (and `from`) are all to check.
    public func minFree(from: Date, to: Date?, excluding: Int64? = nil) -> Int {
        var instants = [from]
        for b in bookings where b.reservationID != excluding && b.start > from && (to.map { b.start < $0 } ?? true) {
            instants.append(b.start)
        }
        let peak = instants.map { used(at: $0, excluding: excluding) }.max() ?? 0
        return total - peak
    }

    /// The earliest start at or after `notBefore` from which `units` are free for `length`
    /// (`nil`: for ever). Free capacity only grows where a booking ends, so only those instants
    /// are candidates. `nil` when nothing ever fits.
    public func earliestStart(units: Int, notBefore: Date, length: TimeInterval?, excluding: Int64? = nil) -> Date? {
        guard units <= total else { return nil }
        var candidates = [notBefore]
        for b in bookings where b.reservationID != excluding {
            if let end = b.end, end > notBefore { candidates.append(end) }
        }
        for candidate in Set(candidates).sorted() {
            let to = length.map { candidate.addingTimeInterval($0) }
            if minFree(from: candidate, to: to, excluding: excluding) >= units { return candidate }
        }
        return nil
    }

    /// Free units as a step function over `[from, to)`.
    public func steps(from: Date, to: Date) -> [FreeStep] {
        guard from < to else { return [] }
        var edges: Set<Date> = [from, to]
        for b in bookings {
            if b.start > from && b.start < to { edges.insert(b.start) }
            if let end = b.end, end > from && end < to { edges.insert(end) }
        }
        let sorted = edges.sorted()
        var result: [FreeStep] = []
        for (start, end) in zip(sorted, sorted.dropFirst()) {
            let free = total - used(at: start)
            if var last = result.last, last.free == free {
                last.end = end
                result[result.count - 1] = last
            } else {
                result.append(FreeStep(start: start, end: end, free: free))
            }
        }
        return result
    }
}
