import Locking
import Swarm
import Synchronization
import TorrentModel

/// A `TokenBucket` that several sessions (each on its own reactor thread) may share, so that one limit
/// covers every torrent of a process. It reads the clock itself, from one origin for all its users.
/// A limiter made `within` another (a torrent's own limit inside the process-wide one) allows a transfer
/// only when both do, and charges both. Without a limit it takes no lock. Its rate may change at any
/// time, from any thread.
public final class RateLimiter: Sendable {
    /// The rate, read without the lock: at 0 transfers pass without taking it. It changes only under
    /// the lock, after the bucket has, so a user that sees a limit finds the bucket already set for it.
    /// A transfer that saw no limit just before one was set goes uncharged: one block, once.
    private let rate: Atomic<Int>
    private let bucket: Lock<TokenBucket>
    private let clock: @Sendable () -> Instant
    private let parent: RateLimiter?
    /// Whether `parent` applies now; a torrent may be exempted from the process-wide limit and back.
    private let followsParent = Atomic<Bool>(true)

    /// - Parameters:
    ///   - rateBytesPerSecond: the limit; 0 for none.
    ///   - parent: a limit this one lives within, charged for everything this one lets through.
    public convenience init(rateBytesPerSecond: Int, within parent: RateLimiter? = nil) {
        let origin = ContinuousClock.now
        self.init(rateBytesPerSecond: rateBytesPerSecond, within: parent) {
            let elapsed = ContinuousClock.now - origin
            return Instant(
                nanoseconds: UInt64(elapsed.components.seconds) * 1_000_000_000
                    + UInt64(elapsed.components.attoseconds / 1_000_000_000))
        }
    }

    /// A limiter reading the time from `clock` (tests pass one they move by hand).
    init(rateBytesPerSecond: Int, within parent: RateLimiter?, clock: @escaping @Sendable () -> Instant) {
        rate = Atomic(max(0, rateBytesPerSecond))
        bucket = Lock(TokenBucket(rateBytesPerSecond: max(0, rateBytesPerSecond)))
        self.clock = clock
        self.parent = parent
    }

    /// This limiter's own rate; 0 for none (its parent may still limit).
    public var rateBytesPerSecond: Int { rate.load(ordering: .relaxed) }

    /// Changes this limiter's own rate (0: none) from now on; see `TokenBucket.setRate`.
    public func setRate(_ rateBytesPerSecond: Int) {
        let newRate = max(0, rateBytesPerSecond)
        let now = clock()
        bucket.withLock { bucket in
            bucket.setRate(newRate, at: now)
            rate.store(newRate, ordering: .relaxed)
        }
    }

    /// Whether the limit this one lives within applies (by default it does). While it does not, this
    /// one's transfers are not charged to it either: an exempt torrent does not eat the others' share.
    public func setFollowsParent(_ follows: Bool) { followsParent.store(follows, ordering: .relaxed) }

    /// The parent limiter, while it applies.
    private var activeParent: RateLimiter? { followsParent.load(ordering: .relaxed) ? parent : nil }

    /// Neither this limiter nor its parent limits anything.
    public var isUnlimited: Bool { ownIsUnlimited && (activeParent?.isUnlimited ?? true) }

    private var ownIsUnlimited: Bool { rateBytesPerSecond == 0 }

    public func allows() -> Bool {
        if let activeParent, !activeParent.allows() { return false }
        guard !ownIsUnlimited else { return true }
        let now = clock()
        return bucket.withLock { $0.allows(at: now) }
    }

    public func spend(_ bytes: Int) {
        activeParent?.spend(bytes)
        guard !ownIsUnlimited else { return }
        let now = clock()
        bucket.withLock { $0.spend(bytes, at: now) }
    }

    /// Allows and charges in one step (both limits); false, charging nothing, when either is spent.
    public func take(_ bytes: Int) -> Bool {
        guard allows() else { return false }
        spend(bytes)
        return true
    }

    public func nanosecondsUntilAllowed() -> UInt64 {
        let parentWait = activeParent?.nanosecondsUntilAllowed() ?? 0
        guard !ownIsUnlimited else { return parentWait }
        let now = clock()
        return max(parentWait, bucket.withLock { $0.nanosecondsUntilAllowed(at: now) })
    }
}

/// Connections allowed at once across every torrent of a process (each session takes one per link),
/// so that many torrents cannot add up to more sockets than the operator allows.
public final class ConnectionBudget: Sendable {
    private let state: Lock<(inUse: Int, limit: Int)>

    public init(limit: Int) { state = Lock((0, max(0, limit))) }

    public var limit: Int { state.withLock { $0.limit } }

    /// Changes the limit at any time. A lower one closes nothing: it refuses new connections until
    /// enough of those in use have ended.
    public func setLimit(_ limit: Int) { state.withLock { $0.limit = max(0, limit) } }

    /// Takes one connection from the budget; false when all are in use.
    public func acquire() -> Bool {
        state.withLock { state in
            guard state.inUse < state.limit else { return false }
            state.inUse += 1
            return true
        }
    }

    public func release() {
        state.withLock { state in
            precondition(state.inUse > 0, "a connection released twice")
            state.inUse -= 1
        }
    }

    /// Connections in use now.
    public var count: Int { state.withLock { $0.inUse } }
}
