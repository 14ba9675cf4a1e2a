import BerthCore
import Testing

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test(
        "latencies are kept to three significant figures",
        arguments: [
            (12.34, 12.3), (0.7345, 0.735), (1000, 1000), (999.6, 1000), (7.55, 7.55), (0.1, 0.1), (123_456, 123_000), (0, 0),
        ]
    )
    func rounding(value: Double, kept: Double) {
        #expect(LatencyHistogram.milliseconds(code: LatencyHistogram.code(milliseconds: value)) == kept)
    }

    @Test("nearest-rank percentiles: p50 of 1…100 ms is 50, p99 is 99")
    func percentiles() {
        var histogram = LatencyHistogram()
        for ms in 1...100 { histogram.add(milliseconds: Double(ms)) }
        #expect(histogram.percentile(50) == 50)
        #expect(histogram.percentile(99) == 99)
        #expect(histogram.percentile(100) == 100)
        #expect(LatencyHistogram().percentile(50) == nil)
    }

    @Test("the stored form adds up to the same histogram")
    func encoding() {
        var a = LatencyHistogram()
        var b = LatencyHistogram()
        for ms in [0.5, 1.5, 1.5, 250, 80_000] { a.add(milliseconds: ms) }
        for ms in [1.5, 3] { b.add(milliseconds: ms) }
        var merged = LatencyHistogram(encoded: a.encoded())
        merged.merge(encoded: b.encoded())
        var expected = a
        expected.merge(b)
        #expect(merged == expected)
        #expect(merged.total == 7)
    }
}
