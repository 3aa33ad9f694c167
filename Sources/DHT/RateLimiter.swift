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
/// work or reflect traffic at a victim. A source is an IPv4 address or an IPv6 /64 (what one host
/// usually holds: counting each address would give a host 2⁶⁴ buckets). Tracks at most `maxSources`;
/// when full, idle ones are forgotten (at most once a second), and a new source is refused only if
/// none is idle.
struct SourceRateLimiter: Sendable {
    let queriesPerSecond: Int
    let burst: Int
    let maxSources: Int
    private var buckets: [DHTIPAddress: DatagramBucket] = [:]
    private var lastSweep = Instant(nanoseconds: 0)

    init(queriesPerSecond: Int, burst: Int, maxSources: Int) {
        self.queriesPerSecond = queriesPerSecond
        self.burst = burst
        self.maxSources = maxSources
    }

    /// Whether a query from `address` may be answered now (charging its source if so).
    mutating func allows(_ address: DHTIPAddress, now: Instant) -> Bool {
        let source = Self.source(of: address)
        if buckets[source] == nil {
            if buckets.count >= maxSources && now.nanoseconds(since: lastSweep) >= 1_000_000_000 {
                forgetIdle(now: now)
            }
            guard buckets.count < maxSources else { return false }
            buckets[source] = DatagramBucket(ratePerSecond: queriesPerSecond, burst: burst, now: now)
        }
        return buckets[source]!.take(now: now)
    }

    /// Forgets the sources whose buckets have refilled, which are indistinguishable from new ones.
    mutating func forgetIdle(now: Instant) {
        lastSweep = now
        buckets = buckets.filter { !$0.value.isFull(now: now) }
    }

    var trackedSources: Int { buckets.count }

    private static func source(of address: DHTIPAddress) -> DHTIPAddress { address.host }
}
