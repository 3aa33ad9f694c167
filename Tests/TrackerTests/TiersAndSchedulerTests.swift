import Testing
import TorrentModel

@testable import Tracker

/// BEP 12 multitracker ordering.
@Suite struct TrackerTiersTests {
    static let list = [
        ["http://a1/announce", "http://a2/announce", "http://a3/announce"],
        ["udp://b1:80", "udp://b2:80"],
        ["http://c1/announce"],
    ]

    func tiers(seed: UInt64 = 5) -> TrackerTiers {
        var random = SeededRandom(seed: seed)
        return TrackerTiers(announce: "http://ignored/announce", announceList: Self.list, random: &random)
    }

    @Test func tiersAreShuffledWithinButNotAcross() {
        let tiers = tiers()
        #expect(tiers.tiers.count == 3)
        #expect(Set(tiers.tiers[0].map(\.description)) == Set(Self.list[0].map { url($0).description }))
        #expect(Set(tiers.tiers[1].map(\.description)) == Set(Self.list[1].map { url($0).description }))
        #expect(tiers.tiers[2] == [url("http://c1/announce")])
        #expect(!tiers.allTrackers.contains(url("http://ignored/announce")))
        // Shuffling is seeded: the same seed gives the same order, and some seed changes it.
        #expect(self.tiers(seed: 5).tiers == tiers.tiers)
        let orders = Set((0..<20).map { self.tiers(seed: $0).tiers[0].map(\.description) })
        #expect(orders.count > 1)
    }

    @Test func failureFallsThroughTheTierThenToTheNextTier() {
        var tiers = tiers()
        let order = tiers.allTrackers
        #expect(tiers.current == order[0])
        var tried = [tiers.current]
        while let next = tiers.currentFailed() { tried.append(next) }
        #expect(tried == order.map { Optional($0) })
        #expect(tiers.current == nil)
        tiers.restart()
        #expect(tiers.current == order[0])
    }

    @Test func aWorkingTrackerMovesToTheFrontOfItsTier() {
        var tiers = tiers()
        let firstTier = tiers.tiers[0]
        tiers.currentFailed()
        tiers.currentFailed()
        #expect(tiers.current == firstTier[2])
        tiers.currentSucceeded()
        #expect(tiers.tiers[0] == [firstTier[2], firstTier[0], firstTier[1]])
        #expect(tiers.current == firstTier[2])

        // A success in a lower tier reorders only that tier; the next round starts at the top again.
        for _ in 0..<3 { tiers.currentFailed() }
        let secondTier = tiers.tiers[1]
        #expect(tiers.current == secondTier[0])
        tiers.currentFailed()
        tiers.currentSucceeded()
        #expect(tiers.tiers[1] == [secondTier[1], secondTier[0]])
        #expect(tiers.tiers[0] == [firstTier[2], firstTier[0], firstTier[1]])
        #expect(tiers.current == firstTier[2])
    }

    @Test func announceAloneIsOneTierOfOne() {
        var random = SeededRandom(seed: 1)
        var tiers = TrackerTiers(
            announce: "udp://t.example:6969/announce", announceList: nil, isPrivate: true, random: &random)
        #expect(tiers.tiers == [[url("udp://t.example:6969/announce")]])
        #expect(tiers.isPrivate)
        #expect(tiers.currentFailed() == nil)
    }

    @Test func unusableURLsAreDroppedWithReasonsAndDuplicatesOnce() {
        var random = SeededRandom(seed: 1)
        let tiers = TrackerTiers(
            announce: "http://fallback/announce",
            announceList: [["wss://x/", "not a url"], ["http://d/announce", "HTTP://D/announce"], []],
            random: &random)
        #expect(tiers.tiers == [[url("http://d/announce")]])
        #expect(tiers.rejectedURLs.count == 2)
        #expect(!tiers.isPrivate)

        var second = SeededRandom(seed: 1)
        let fallback = TrackerTiers(
            announce: "http://fallback/announce", announceList: [["wss://x/"]], random: &second)
        #expect(fallback.tiers == [[url("http://fallback/announce")]])

        var third = SeededRandom(seed: 1)
        var empty = TrackerTiers(announce: nil, announceList: nil, random: &third)
        #expect(empty.current == nil)
        #expect(empty.currentFailed() == nil)
        empty.currentSucceeded()
        #expect(empty.tiers.isEmpty)
    }
}

/// The announce lifecycle for one tracker.
@Suite struct AnnounceSchedulerTests {
    static func response(
        interval: Int64 = 1800, minimum: Int64? = nil, trackerID: [UInt8]? = nil
    ) -> AnnounceResponse {
        AnnounceResponse(intervalSeconds: interval, minimumIntervalSeconds: minimum, trackerID: trackerID)
    }

    @Test func startedThenRegularAnnouncesAtTheInterval() {
        var scheduler = AnnounceScheduler()
        #expect(scheduler.poll(now: .seconds(0)) == .idle)
        scheduler.start(now: .seconds(10), isComplete: false)
        #expect(scheduler.poll(now: .seconds(10)) == .announce(.started))
        #expect(scheduler.poll(now: .seconds(11)) == .awaitingOutcome)
        scheduler.announceSucceeded(Self.response(interval: 1800, trackerID: ascii("id1")), now: .seconds(12))
        #expect(scheduler.trackerID == ascii("id1"))
        #expect(scheduler.poll(now: .seconds(1811)) == .waitUntil(.seconds(1812)))
        #expect(scheduler.poll(now: .seconds(1812)) == .announce(.none))
        scheduler.announceSucceeded(Self.response(interval: 600, minimum: 900), now: .seconds(1813))
        // `min interval` above `interval` wins.
        #expect(scheduler.poll(now: .seconds(1813)) == .waitUntil(.seconds(2713)))
        #expect(scheduler.trackerID == ascii("id1"))
    }

    @Test func completedIsSentExactlyOnce() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        _ = scheduler.poll(now: .seconds(0))
        scheduler.announceSucceeded(Self.response(), now: .seconds(1))
        scheduler.downloadCompleted(now: .seconds(100))
        scheduler.downloadCompleted(now: .seconds(101))
        #expect(scheduler.poll(now: .seconds(100)) == .announce(.completed))
        scheduler.announceSucceeded(Self.response(), now: .seconds(102))
        #expect(scheduler.completedSettled)
        scheduler.downloadCompleted(now: .seconds(200))
        #expect(scheduler.poll(now: .seconds(200)) == .waitUntil(.seconds(1902)))
        #expect(scheduler.poll(now: .seconds(1902)) == .announce(.none))
    }

    @Test func completedRetriesAfterAFailureUntilItGoesThrough() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        _ = scheduler.poll(now: .seconds(0))
        scheduler.announceSucceeded(Self.response(), now: .seconds(0))
        scheduler.downloadCompleted(now: .seconds(50))
        #expect(scheduler.poll(now: .seconds(50)) == .announce(.completed))
        scheduler.announceFailed(now: .seconds(51))
        #expect(scheduler.poll(now: .seconds(81)) == .announce(.completed))
        scheduler.announceSucceeded(Self.response(), now: .seconds(82))
        #expect(scheduler.poll(now: .seconds(1882)) == .announce(.none))
    }

    @Test func completionDuringStartedIsReportedRightAfterIt() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        #expect(scheduler.poll(now: .seconds(0)) == .announce(.started))
        scheduler.downloadCompleted(now: .seconds(1))
        #expect(scheduler.poll(now: .seconds(1)) == .awaitingOutcome)
        scheduler.announceSucceeded(Self.response(), now: .seconds(2))
        #expect(scheduler.poll(now: .seconds(2)) == .announce(.completed))
    }

    @Test func aSeedFromTheStartNeverSendsCompleted() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: true)
        #expect(scheduler.poll(now: .seconds(0)) == .announce(.started))
        scheduler.announceSucceeded(Self.response(interval: 60), now: .seconds(0))
        scheduler.downloadCompleted(now: .seconds(5))
        #expect(scheduler.poll(now: .seconds(5)) == .waitUntil(.seconds(60)))
        #expect(scheduler.poll(now: .seconds(60)) == .announce(.none))
    }

    @Test func failuresBackOffExponentiallyUpToTheCap() {
        var scheduler = AnnounceScheduler(options: .init(retryBaseSeconds: 30, retryMaxSeconds: 200))
        scheduler.start(now: .seconds(0), isComplete: false)
        var now: UInt64 = 0
        var waits: [UInt64] = []
        for _ in 0..<5 {
            #expect(scheduler.poll(now: .zero.adding(seconds: now)) == .announce(.started))
            scheduler.announceFailed(now: .zero.adding(seconds: now))
            guard case .waitUntil(let next) = scheduler.poll(now: .zero.adding(seconds: now)) else {
                Issue.record("expected a wait")
                return
            }
            waits.append(next.nanoseconds / 1_000_000_000 - now)
            now = next.nanoseconds / 1_000_000_000
        }
        #expect(waits == [30, 60, 120, 200, 200])
        #expect(scheduler.consecutiveFailures == 5)
        #expect(scheduler.poll(now: .zero.adding(seconds: now)) == .announce(.started))
        scheduler.announceSucceeded(Self.response(interval: 300), now: .zero.adding(seconds: now))
        #expect(scheduler.consecutiveFailures == 0)
        #expect(
            scheduler.poll(now: .zero.adding(seconds: now)) == .waitUntil(.zero.adding(seconds: now + 300)))
    }

    @Test func stoppedOnShutdownOnlyIfStartedWentThrough() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        _ = scheduler.poll(now: .seconds(0))
        scheduler.announceSucceeded(Self.response(), now: .seconds(1))
        scheduler.stop()
        #expect(scheduler.phase == .stopping)
        #expect(scheduler.poll(now: .seconds(2)) == .announce(.stopped))
        #expect(scheduler.poll(now: .seconds(2)) == .awaitingOutcome)
        scheduler.announceFailed(now: .seconds(3))
        #expect(scheduler.phase == .stopped)
        #expect(scheduler.poll(now: .seconds(4)) == .idle)

        var neverStarted = AnnounceScheduler()
        neverStarted.start(now: .seconds(0), isComplete: false)
        _ = neverStarted.poll(now: .seconds(0))
        neverStarted.announceFailed(now: .seconds(1))
        neverStarted.stop()
        #expect(neverStarted.poll(now: .seconds(2)) == .idle)
        #expect(neverStarted.phase == .stopped)
    }

    @Test func stopWaitsForTheAnnounceInFlight() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        #expect(scheduler.poll(now: .seconds(0)) == .announce(.started))
        scheduler.stop()
        #expect(scheduler.poll(now: .seconds(1)) == .awaitingOutcome)
        scheduler.announceSucceeded(Self.response(), now: .seconds(2))
        #expect(scheduler.poll(now: .seconds(2)) == .announce(.stopped))
        scheduler.announceSucceeded(Self.response(), now: .seconds(3))
        #expect(scheduler.phase == .stopped)
        #expect(scheduler.poll(now: .seconds(5000)) == .idle)
    }

    @Test func requestedAnnouncesHonourTheMinimumInterval() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        _ = scheduler.poll(now: .seconds(0))
        scheduler.announceSucceeded(Self.response(interval: 1800, minimum: 300), now: .seconds(0))
        scheduler.requestAnnounce(now: .seconds(10))
        #expect(scheduler.poll(now: .seconds(10)) == .waitUntil(.seconds(300)))
        #expect(scheduler.poll(now: .seconds(300)) == .announce(.none))
        scheduler.announceSucceeded(Self.response(interval: 1800), now: .seconds(300))
        scheduler.requestAnnounce(now: .seconds(1000))
        #expect(scheduler.poll(now: .seconds(1000)) == .announce(.none))
    }

    /// A manual reannounce skips the regular interval and a failing tracker's back-off, but not the
    /// tracker's own `min interval`.
    @Test func announcesAskedForNowHonourOnlyTheTrackersMinimumInterval() {
        var scheduler = AnnounceScheduler()
        scheduler.start(now: .seconds(0), isComplete: false)
        _ = scheduler.poll(now: .seconds(0))
        scheduler.announceSucceeded(Self.response(interval: 1800), now: .seconds(0))
        scheduler.announceNow(now: .seconds(10))
        #expect(scheduler.poll(now: .seconds(10)) == .announce(.none))
        scheduler.announceSucceeded(Self.response(interval: 1800, minimum: 300), now: .seconds(10))
        scheduler.announceNow(now: .seconds(20))
        #expect(scheduler.poll(now: .seconds(20)) == .waitUntil(.seconds(310)))
        #expect(scheduler.poll(now: .seconds(310)) == .announce(.none))
        scheduler.announceFailed(now: .seconds(310))
        #expect(scheduler.poll(now: .seconds(311)) == .waitUntil(.seconds(340)))
        scheduler.announceNow(now: .seconds(311))
        #expect(scheduler.poll(now: .seconds(311)) == .announce(.none))
    }
}
