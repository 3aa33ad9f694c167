import Dispatch
import Locking
import Testing
import TorrentModel

@testable import Engine

/// Rate and connection limits changed while in use, on a clock moved by hand.
@Suite struct RateLimiterTests {
    /// Time that moves only when a test says so.
    final class HandClock: Sendable {
        private let nanoseconds = Lock<UInt64>(0)
        var now: Instant { Instant(nanoseconds: nanoseconds.withLock { $0 }) }
        func advance(milliseconds: UInt64) { nanoseconds.withLock { $0 += milliseconds * 1_000_000 } }
    }

    static func limiter(_ rate: Int, within parent: RateLimiter? = nil, clock: HandClock) -> RateLimiter {
        RateLimiter(rateBytesPerSecond: rate, within: parent) { clock.now }
    }

    @Test func aRaisedRateLetsTheNextTransferThroughSooner() {
        let clock = HandClock()
        let limiter = Self.limiter(10_000, clock: clock)
        #expect(limiter.take(16_384))
        clock.advance(milliseconds: 1)
        // A positive balance lets a whole block through; the debt that follows takes 1.6 s at 10 kB/s.
        #expect(limiter.take(16_384) && !limiter.take(16_384))
        #expect(limiter.nanosecondsUntilAllowed() > 1_000_000_000)
        limiter.setRate(10_000_000)
        #expect(limiter.rateBytesPerSecond == 10_000_000)
        #expect(limiter.nanosecondsUntilAllowed() < 2_000_000)
        clock.advance(milliseconds: 2)
        #expect(limiter.take(16_384))
    }

    @Test func aLimitSetOnAnUnlimitedLimiterHoldsAndCanBeLiftedAgain() {
        let clock = HandClock()
        let limiter = Self.limiter(0, clock: clock)
        #expect(limiter.isUnlimited && limiter.take(1 << 30))
        limiter.setRate(10_000)
        #expect(!limiter.isUnlimited && limiter.rateBytesPerSecond == 10_000)
        // The bytes that passed unlimited are not owed: the limit starts with its burst.
        #expect(limiter.take(16_384))
        clock.advance(milliseconds: 1)
        #expect(limiter.take(16_384) && !limiter.take(16_384))
        limiter.setRate(0)
        #expect(limiter.isUnlimited && limiter.take(1 << 30) && limiter.nanosecondsUntilAllowed() == 0)
    }

    /// A torrent's limiter without a rate of its own follows the shared one as that changes.
    @Test func aChangedSharedRateReachesTheLimitersWithinIt() {
        let clock = HandClock()
        let shared = Self.limiter(0, clock: clock)
        let torrent = Self.limiter(0, within: shared, clock: clock)
        #expect(torrent.isUnlimited)
        shared.setRate(10_000)
        #expect(!torrent.isUnlimited && torrent.take(16_384))
        clock.advance(milliseconds: 1)
        #expect(torrent.take(16_384) && !torrent.take(16_384))
        shared.setRate(0)
        #expect(torrent.isUnlimited && torrent.take(16_384))
    }

    /// A torrent exempted from the shared limit (`honorsSessionLimits` false) keeps only its own, and
    /// its transfers do not use up the others' share; it can be put back under the shared limit.
    @Test func anExemptLimiterIgnoresTheSharedOne() {
        let clock = HandClock()
        let shared = Self.limiter(10_000, clock: clock)
        let exempt = Self.limiter(0, within: shared, clock: clock)
        let other = Self.limiter(0, within: shared, clock: clock)
        exempt.setFollowsParent(false)
        #expect(exempt.isUnlimited)
        for _ in 0..<10 { #expect(exempt.take(16_384)) }
        #expect(other.take(16_384))
        exempt.setFollowsParent(true)
        #expect(!exempt.isUnlimited && !exempt.take(16_384))
        #expect(exempt.nanosecondsUntilAllowed() > 0)
    }

    /// Users on several threads while another switches the limit on and off: no lost update of the
    /// rate, and the limiter ends with the last one set.
    @Test func rateChangesRaceTransfersSafely() {
        let limiter = RateLimiter(rateBytesPerSecond: 0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for round in 0..<10_000 {
                if worker == 0 {
                    limiter.setRate(round % 2 == 0 ? 1_000_000 : 0)
                } else {
                    _ = limiter.take(1_000)
                    _ = limiter.nanosecondsUntilAllowed()
                }
            }
        }
        limiter.setRate(5_000)
        #expect(limiter.rateBytesPerSecond == 5_000 && !limiter.isUnlimited)
    }

    @Test func aLoweredConnectionBudgetRefusesNewOnesAndClosesNone() {
        let budget = ConnectionBudget(limit: 2)
        #expect(budget.acquire() && budget.acquire())
        budget.setLimit(1)
        #expect(budget.limit == 1 && budget.count == 2 && !budget.acquire())
        budget.release()
        #expect(!budget.acquire())
        budget.release()
        #expect(budget.acquire())
        budget.setLimit(3)
        #expect(budget.acquire() && budget.count == 2)
    }
}
