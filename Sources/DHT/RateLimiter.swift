import TorrentModel

/// A token bucket counting datagrams: `ratePerSecond` tokens accrue up to `burst`, and each datagram takes
/// one. Pure: the caller passes the time.
struct DatagramBucket: Sendable {
    let ratePerSecond: Double
    let burst: Double
    private var tokens: Double
    private var updatedAt: Instant

    init(ratePerSecond: Int, burst: Int, now: Instant) {
        self.ratePerSecond = Double(ratePerSecond)
        self.burst = Double(max(1, burst))
        tokens = self.burst
        updatedAt = now
    }

    /// Takes a token if one is available.
    mutating func take(now: Instant) -> Bool {
        tokens = min(burst, tokens + Double(now.nanoseconds(since: updatedAt)) * ratePerSecond / 1e9)
        updatedAt = max(updatedAt, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whether the bucket has refilled completely by `now`, so forgetting it changes nothing.
    func isFull(now: Instant) -> Bool {
        tokens + Double(now.nanoseconds(since: updatedAt)) * ratePerSecond / 1e9 >= burst
    }
}

/// Per-source limits on the queries this node answers, so one address cannot make it do unbounded
/// work or reflect traffic at a victim. Tracks at most `maxSources` addresses; when full, a new address
/// is refused until idle ones are forgotten by ``forgetIdle(now:)``.
struct SourceRateLimiter: Sendable {
    let queriesPerSecond: Int
    let burst: Int
    let maxSources: Int
    private var buckets: [DHTIPAddress: DatagramBucket] = [:]

    init(queriesPerSecond: Int, burst: Int, maxSources: Int) {
        self.queriesPerSecond = queriesPerSecond
        self.burst = burst
        self.maxSources = maxSources
    }

    /// Whether a query from `source` may be answered now (charging it if so).
    mutating func allows(_ source: DHTIPAddress, now: Instant) -> Bool {
        if buckets[source] == nil {
            guard buckets.count < maxSources else { return false }
            buckets[source] = DatagramBucket(ratePerSecond: queriesPerSecond, burst: burst, now: now)
        }
        return buckets[source]!.take(now: now)
    }

    /// Forgets the sources whose buckets have refilled, which are indistinguishable from new ones.
    mutating func forgetIdle(now: Instant) {
        buckets = buckets.filter { !$0.value.isFull(now: now) }
    }
}
