import Swarm
import Testing
import TorrentModel

@Suite struct TokenBucketTests {
    @Test func aFullBucketAllowsItsBurstThenWaitsForTheRate() {
        var bucket = TokenBucket(rateBytesPerSecond: 100_000, burstBytes: 32_768)
        let start = Instant.seconds(1)
        let first = bucket.take(16_384, at: start)
        let second = bucket.take(16_384, at: start)
        // Empty now: nothing until tokens accrue.
        let third = bucket.take(16_384, at: start)
        #expect(first && second && !third)
        #expect(bucket.nanosecondsUntilAllowed(at: start) > 0)
        // 1 ms at 100 kB/s earns 100 bytes: a positive balance allows a whole block (a debt follows).
        let afterOneMillisecond = bucket.take(16_384, at: .seconds(1.001))
        #expect(afterOneMillisecond && bucket.balanceBytes < 0)
        let tooSoon = bucket.allows(at: .seconds(1.1))
        let paidBack = bucket.allows(at: .seconds(1.17))
        #expect(!tooSoon && paidBack)
    }

    @Test func theAverageRateHoldsOverTime() {
        var bucket = TokenBucket(rateBytesPerSecond: 1_000_000)
        var sent = 0
        var now = Instant.zero
        // Offer a block every millisecond for ten seconds.
        for _ in 0..<10_000 {
            if bucket.take(16_384, at: now) { sent += 16_384 }
            now = Instant(nanoseconds: now.nanoseconds + 1_000_000)
        }
        let allowance = 10 * 1_000_000 + bucket.burstBytes + 16_384
        #expect(sent <= allowance)
        #expect(sent >= 10 * 1_000_000 - 16_384)
    }

    @Test func idleTimeEarnsAtMostTheBurst() {
        var bucket = TokenBucket(rateBytesPerSecond: 50_000, burstBytes: 20_000)
        bucket.spend(20_000, at: .zero)
        let empty = bucket.allows(at: .zero)
        _ = bucket.allows(at: .seconds(100))
        #expect(!empty && bucket.balanceBytes == 20_000)
    }

    @Test func bytesChargedWithoutAskingStillCount() {
        var bucket = TokenBucket(rateBytesPerSecond: 10_000, burstBytes: 16_384)
        bucket.spend(50_000, at: .zero)
        let inDebt = bucket.allows(at: .seconds(3))
        #expect(!inDebt && bucket.nanosecondsUntilAllowed(at: .seconds(3)) > 0)
        let paidBack = bucket.allows(at: .seconds(3.4))
        #expect(paidBack)
    }

    @Test func zeroMeansUnlimited() {
        var bucket = TokenBucket(rateBytesPerSecond: 0)
        var allowed = 0
        for _ in 0..<1000 where bucket.take(1 << 20, at: .zero) { allowed += 1 }
        #expect(allowed == 1000 && bucket.nanosecondsUntilAllowed(at: .zero) == 0)
    }

    @Test func aRaisedRatePaysADebtBackSooner() {
        var bucket = TokenBucket(rateBytesPerSecond: 10_000, burstBytes: 16_384)
        bucket.spend(50_000, at: .zero)
        // At 10 kB/s the debt is paid back after 3.4 s; at 1 MB/s from the first second on, within 30 ms.
        bucket.setRate(1_000_000, at: .seconds(1))
        let atOnce = bucket.allows(at: .seconds(1))
        let soon = bucket.allows(at: .seconds(1.03))
        #expect(!atOnce && soon)
        #expect(bucket.rateBytesPerSecond == 1_000_000 && bucket.burstBytes == 100_000)
    }

    @Test func aLoweredRateCutsTheBurstAtOnce() {
        var bucket = TokenBucket(rateBytesPerSecond: 1_000_000)
        _ = bucket.allows(at: .zero)
        bucket.setRate(10_000, at: .zero)
        #expect(bucket.balanceBytes == 16_384)
        let first = bucket.take(16_384, at: .zero)
        let second = bucket.take(16_384, at: .seconds(0.001))
        // The debt of the second block is paid back at 10 kB/s: after 1.64 s.
        let tooSoon = bucket.allows(at: .seconds(1.6))
        let later = bucket.allows(at: .seconds(1.7))
        #expect(first && second && !tooSoon && later)
    }

    @Test func switchingBetweenUnlimitedAndLimited() {
        var bucket = TokenBucket(rateBytesPerSecond: 0)
        bucket.spend(1 << 30, at: .zero)
        // Unlimited tracked nothing: a limit starts with a full burst.
        bucket.setRate(100_000, burstBytes: 20_000, at: .seconds(5))
        let first = bucket.take(16_384, at: .seconds(5))
        let second = bucket.take(16_384, at: .seconds(5))
        let third = bucket.take(16_384, at: .seconds(5))
        #expect(first && second && !third)
        bucket.setRate(0, at: .seconds(5))
        #expect(bucket.isUnlimited && bucket.take(1 << 30, at: .seconds(5)))
        #expect(bucket.nanosecondsUntilAllowed(at: .seconds(5)) == 0)
    }
}
