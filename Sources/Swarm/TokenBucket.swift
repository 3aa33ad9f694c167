import TorrentModel

/// A token bucket for a byte rate limit: tokens accrue at `rateBytesPerSecond`, up to `burstBytes`.
///
/// A transfer is allowed while the balance is positive and then charged in full, so a whole block goes
/// out at once and the balance may dip below zero; the debt is paid back before the next one. Over any
/// long interval the bytes allowed are at most `rate × time + burstBytes + one transfer`. Pure: the
/// caller passes the time.
///
/// Invariants: `balanceBytes <= burstBytes`; a rate of 0 means unlimited and then every transfer is
/// allowed and nothing is tracked.
public struct TokenBucket: Sendable {
    public private(set) var rateBytesPerSecond: Int
    public private(set) var burstBytes: Int
    /// Tokens available now (negative: a debt from the last transfer).
    public private(set) var balanceBytes: Double
    private var updatedAt: Instant?

    /// - Parameters:
    ///   - rateBytesPerSecond: the limit; 0 for none.
    ///   - burstBytes: the most that accrues while idle; default a tenth of a second of the rate (at least
    ///     one 16 KiB block), so an idle link does not earn a long burst.
    public init(rateBytesPerSecond: Int, burstBytes: Int? = nil) {
        precondition(rateBytesPerSecond >= 0, "a negative rate")
        self.rateBytesPerSecond = rateBytesPerSecond
        self.burstBytes = max(1, burstBytes ?? max(16_384, rateBytesPerSecond / 10))
        balanceBytes = Double(self.burstBytes)
    }

    public var isUnlimited: Bool { rateBytesPerSecond == 0 }

    /// Changes the rate from `now` on: tokens earned so far count at the old rate. The burst follows
    /// the new rate as in `init`; a balance above it is cut to it, and a debt is kept, so a lowered
    /// limit applies at once. A bucket that was unlimited tracked nothing and starts full.
    public mutating func setRate(_ rateBytesPerSecond: Int, burstBytes: Int? = nil, at now: Instant) {
        precondition(rateBytesPerSecond >= 0, "a negative rate")
        let wasUnlimited = isUnlimited
        if wasUnlimited { updatedAt = now } else { refill(at: now) }
        self.rateBytesPerSecond = rateBytesPerSecond
        self.burstBytes = max(1, burstBytes ?? max(16_384, rateBytesPerSecond / 10))
        balanceBytes = wasUnlimited ? Double(self.burstBytes) : min(balanceBytes, Double(self.burstBytes))
    }

    /// Whether a transfer may start now.
    public mutating func allows(at now: Instant) -> Bool {
        guard !isUnlimited else { return true }
        refill(at: now)
        return balanceBytes > 0
    }

    /// Charges a transfer of `bytes` (allowed or not: bytes that arrived unasked are still counted).
    public mutating func spend(_ bytes: Int, at now: Instant) {
        guard !isUnlimited else { return }
        refill(at: now)
        balanceBytes -= Double(bytes)
    }

    /// Allows and charges in one step; false (charging nothing) while the balance is not positive.
    public mutating func take(_ bytes: Int, at now: Instant) -> Bool {
        guard allows(at: now) else { return false }
        spend(bytes, at: now)
        return true
    }

    /// Nanoseconds until a transfer will be allowed (0 if it is now).
    public func nanosecondsUntilAllowed(at now: Instant) -> UInt64 {
        guard !isUnlimited else { return 0 }
        var balance = balanceBytes
        if let updatedAt, now > updatedAt {
            balance += Double(now.nanoseconds - updatedAt.nanoseconds) * Double(rateBytesPerSecond) / 1e9
        }
        guard balance <= 0 else { return 0 }
        return UInt64((-balance + 1) * 1e9 / Double(rateBytesPerSecond)) + 1
    }

    private mutating func refill(at now: Instant) {
        defer { if updatedAt.map({ now > $0 }) ?? true { updatedAt = now } }
        guard let updatedAt, now > updatedAt else { return }
        let earned = Double(now.nanoseconds - updatedAt.nanoseconds) * Double(rateBytesPerSecond) / 1e9
        balanceBytes = min(Double(burstBytes), balanceBytes + earned)
    }
}
