/// Comparing secrets: API keys' digests in berthd, serve tokens in `berth-runner serve`.
public enum ConstantTime {
    /// Equal bytes, looked at in full whatever the first difference, so how long a comparison
    /// takes says nothing of where a guess went wrong.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
