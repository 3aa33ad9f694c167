import Swarm
import Synchronization

/// A `TokenBucket` that several sessions (each on its own reactor thread) may share, so that one limit
/// covers every torrent of a process. It reads the clock itself, from one origin for all its users.
/// Without a limit it takes no lock.
public final class RateLimiter: Sendable {
    public let rateBytesPerSecond: Int
    private let bucket: Mutex<TokenBucket>
    private let origin = ContinuousClock.now

    /// - Parameter rateBytesPerSecond: the limit; 0 for none.
    public init(rateBytesPerSecond: Int) {
        self.rateBytesPerSecond = max(0, rateBytesPerSecond)
        bucket = Mutex(TokenBucket(rateBytesPerSecond: max(0, rateBytesPerSecond)))
    }

    public var isUnlimited: Bool { rateBytesPerSecond == 0 }

    private var now: Instant {
        let elapsed = ContinuousClock.now - origin
        return Instant(
            nanoseconds: UInt64(elapsed.components.seconds) * 1_000_000_000
                + UInt64(elapsed.components.attoseconds / 1_000_000_000))
    }

    public func allows() -> Bool {
        guard !isUnlimited else { return true }
        let now = now
        return bucket.withLock { $0.allows(at: now) }
    }

    public func spend(_ bytes: Int) {
        guard !isUnlimited else { return }
        let now = now
        bucket.withLock { $0.spend(bytes, at: now) }
    }

    public func take(_ bytes: Int) -> Bool {
        guard !isUnlimited else { return true }
        let now = now
        return bucket.withLock { $0.take(bytes, at: now) }
    }

    public func nanosecondsUntilAllowed() -> UInt64 {
        guard !isUnlimited else { return 0 }
        let now = now
        return bucket.withLock { $0.nanosecondsUntilAllowed(at: now) }
    }
}
