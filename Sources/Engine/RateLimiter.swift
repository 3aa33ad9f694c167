import Swarm
import Synchronization
import TorrentModel

/// A `TokenBucket` that several sessions (each on its own reactor thread) may share, so that one limit
/// covers every torrent of a process. It reads the clock itself, from one origin for all its users.
/// A limiter made `within` another (a torrent's own limit inside the process-wide one) allows a transfer
/// only when both do, and charges both. Without a limit it takes no lock.
public final class RateLimiter: Sendable {
    /// This limiter's own rate; 0 for none (its parent may still limit).
    public let rateBytesPerSecond: Int
    private let bucket: Mutex<TokenBucket>
    private let origin = ContinuousClock.now
    private let parent: RateLimiter?

    /// - Parameters:
    ///   - rateBytesPerSecond: the limit; 0 for none.
    ///   - parent: a limit this one lives within, charged for everything this one lets through.
    public init(rateBytesPerSecond: Int, within parent: RateLimiter? = nil) {
        self.rateBytesPerSecond = max(0, rateBytesPerSecond)
        bucket = Mutex(TokenBucket(rateBytesPerSecond: max(0, rateBytesPerSecond)))
        self.parent = parent
    }

    /// Neither this limiter nor its parent limits anything.
    public var isUnlimited: Bool { ownIsUnlimited && (parent?.isUnlimited ?? true) }

    private var ownIsUnlimited: Bool { rateBytesPerSecond == 0 }

    private var now: Instant {
        let elapsed = ContinuousClock.now - origin
        return Instant(
            nanoseconds: UInt64(elapsed.components.seconds) * 1_000_000_000
                + UInt64(elapsed.components.attoseconds / 1_000_000_000))
    }

    public func allows() -> Bool {
        if let parent, !parent.allows() { return false }
        guard !ownIsUnlimited else { return true }
        let now = now
        return bucket.withLock { $0.allows(at: now) }
    }

    public func spend(_ bytes: Int) {
        parent?.spend(bytes)
        guard !ownIsUnlimited else { return }
        let now = now
        bucket.withLock { $0.spend(bytes, at: now) }
    }

    /// Allows and charges in one step (both limits); false, charging nothing, when either is spent.
    public func take(_ bytes: Int) -> Bool {
        guard allows() else { return false }
        spend(bytes)
        return true
    }

    public func nanosecondsUntilAllowed() -> UInt64 {
        let parentWait = parent?.nanosecondsUntilAllowed() ?? 0
        guard !ownIsUnlimited else { return parentWait }
        let now = now
        return max(parentWait, bucket.withLock { $0.nanosecondsUntilAllowed(at: now) })
    }
}

/// Connections allowed at once across every torrent of a process (each session takes one per link),
/// so that many torrents cannot add up to more sockets than the operator allows.
public final class ConnectionBudget: Sendable {
    public let limit: Int
    private let inUse = Mutex(0)

    public init(limit: Int) { self.limit = max(0, limit) }

    /// Takes one connection from the budget; false when all are in use.
    public func acquire() -> Bool {
        inUse.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    public func release() {
        inUse.withLock { count in
            precondition(count > 0, "a connection released twice")
            count -= 1
        }
    }

    /// Connections in use now.
    public var count: Int { inUse.withLock { $0 } }
}
