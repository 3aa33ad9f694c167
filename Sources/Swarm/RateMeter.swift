import TorrentModel

/// A sliding-window byte-rate estimate over a fixed number of time buckets.
///
/// Chosen over an exponential average because it needs no transcendental math, forgets a stalled peer
/// completely after one window, and costs one add per sample with no allocation (the buckets are inline).
///
/// Invariants: `buckets[n % bucketCount]` holds the bytes recorded in absolute bucket `n` for
/// `n` in `(latestBucket - bucketCount, latestBucket]`; older buckets have been zeroed.
public struct RateMeter: Sendable {
    static let bucketCount = 8
    private var buckets = InlineArray<8, UInt64>(repeating: 0)
    private var latestBucket: UInt64 = 0
    private var firstSampleAt: Instant?
    private let bucketNanoseconds: UInt64

    /// A meter averaging over `window` (split into eight buckets).
    public init(window: Duration = .seconds(4)) {
        bucketNanoseconds = max(1, window.nanosecondCount / UInt64(Self.bucketCount))
    }

    /// Total bytes seen since creation.
    public private(set) var totalBytes: UInt64 = 0

    /// Records `bytes` arriving at `now`.
    public mutating func record(bytes: Int, at now: Instant) {
        precondition(bytes >= 0)
        let bucket = now.nanoseconds / bucketNanoseconds
        if firstSampleAt == nil {
            firstSampleAt = now
            latestBucket = bucket
        }
        if bucket > latestBucket {
            // Zero the buckets skipped over, at most one full turn.
            let steps = min(bucket - latestBucket, UInt64(Self.bucketCount))
            for step in 1...steps { buckets[Int((latestBucket + step) % UInt64(Self.bucketCount))] = 0 }
            latestBucket = bucket
        }
        // A sample from the past (never expected) is charged to the latest bucket rather than lost.
        buckets[Int(latestBucket % UInt64(Self.bucketCount))] += UInt64(bytes)
        totalBytes += UInt64(bytes)
    }

    /// The average rate over the window ending at `now`, in bytes per second. Before a full window has
    /// passed since the first sample, averages over the time since that sample (at least one bucket), so
    /// a new fast peer is recognised quickly.
    public func rateBytesPerSecond(at now: Instant) -> Double {
        guard let firstSampleAt else { return 0 }
        let count = UInt64(Self.bucketCount)
        let nowBucket = max(now.nanoseconds / bucketNanoseconds, latestBucket)
        guard nowBucket < latestBucket + count else { return 0 }
        // The window holds buckets `oldest...nowBucket`; those after `latestBucket` are empty, and the
        // guard above makes `latestBucket >= oldest`.
        let oldest = nowBucket + 1 >= count ? nowBucket + 1 - count : 0
        var sum: UInt64 = 0
        var n = latestBucket
        while true {
            sum += buckets[Int(n % count)]
            if n == oldest { break }
            n -= 1
        }
        let start = max(oldest * bucketNanoseconds, firstSampleAt.nanoseconds)
        let span = max(now.nanoseconds > start ? now.nanoseconds - start : 0, bucketNanoseconds)
        return Double(sum) * 1e9 / Double(span)
    }
}
