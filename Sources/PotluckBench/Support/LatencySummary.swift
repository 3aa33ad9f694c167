/// Percentiles of a series of latencies, by nearest rank: p99 of 50 samples is the largest.
struct LatencySummary {
    let samples: [Double]

    init?(seconds samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        self.samples = samples.sorted()
    }

    /// The smallest sample that `fraction` of the samples are no larger than.
    func percentile(_ fraction: Double) -> Double {
        let rank = Int((fraction * Double(samples.count)).rounded(.up))
        return samples[min(samples.count, max(1, rank)) - 1]
    }

    var p50: Double { percentile(0.5) }
    var p99: Double { percentile(0.99) }

    var json: [String: Any] { ["samples": samples.count, "p50_seconds": p50, "p99_seconds": p99] }
}
