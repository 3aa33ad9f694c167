import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// Which idle limit applies to a torrent, and when it is reached, with the time handed in.
@Suite struct SeedIdleLimitTests {
    @Test func theModeChoosesTheLimit() {
        let global = SeedIdleLimit(mode: .global, torrentMinutes: 5, sessionEnabled: true, sessionMinutes: 30)
        #expect(global?.minutes == 30)
        #expect(
            SeedIdleLimit(mode: .global, torrentMinutes: 5, sessionEnabled: false, sessionMinutes: 30) == nil)
        let own = SeedIdleLimit(mode: .single, torrentMinutes: 5, sessionEnabled: false, sessionMinutes: 30)
        #expect(own?.minutes == 5)
        #expect(
            SeedIdleLimit(mode: .unlimited, torrentMinutes: 5, sessionEnabled: true, sessionMinutes: 30)
                == nil)
        #expect(
            SeedIdleLimit(mode: .single, torrentMinutes: -1, sessionEnabled: true, sessionMinutes: 30) == nil)
    }

    /// Idle time runs from the later of the start and the last transfer.
    @Test func idleTimeRunsFromTheLaterOfStartAndLastTransfer() throws {
        let limit = try #require(
            SeedIdleLimit(mode: .single, torrentMinutes: 10, sessionEnabled: false, sessionMinutes: 0))
        // Started at 1000, never moved data: stops at 1600.
        #expect(limit.secondsLeft(startDate: 1000, activityDate: 0, now: 1000) == 600)
        #expect(!limit.isReached(startDate: 1000, activityDate: 0, now: 1599))
        #expect(limit.isReached(startDate: 1000, activityDate: 0, now: 1600))
        // An upload at 1500 puts it off to 2100.
        #expect(!limit.isReached(startDate: 1000, activityDate: 1500, now: 2099))
        #expect(limit.isReached(startDate: 1000, activityDate: 1500, now: 2100))
        #expect(limit.secondsLeft(startDate: 1000, activityDate: 1500, now: 5000) == 0)
        // Activity from an earlier run does not count against a restart.
        #expect(!limit.isReached(startDate: 9000, activityDate: 100, now: 9001))
    }

    @Test func aLimitOfZeroStopsAtOnce() throws {
        let limit = try #require(
            SeedIdleLimit(mode: .global, torrentMinutes: 10, sessionEnabled: true, sessionMinutes: 0))
        #expect(limit.isReached(startDate: 1000, activityDate: 1000, now: 1000))
    }
}
