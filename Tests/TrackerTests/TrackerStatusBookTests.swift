import Testing

@testable import Tracker

/// Each tracker's outcome and schedule as front ends see it; times are given, not read.
@Suite struct TrackerStatusBookTests {
    let dead = try! TrackerURL("http://dead.example/announce")
    let live = try! TrackerURL("udp://live.example:6969")
    let spare = try! TrackerURL("http://spare.example/announce")

    func status(_ book: TrackerStatusBook, _ url: TrackerURL) -> TrackerStatus {
        book.statuses.first { $0.announce == url.description }!
    }

    @Test func eachTrackerKeepsItsOwnOutcome() {
        var book = TrackerStatusBook(trackers: [dead, live])
        #expect(book.statuses.map(\.announce) == [dead.description, live.description])
        #expect(!status(book, dead).hasAnnounced)

        book.announceStarted(dead, now: 1000)
        #expect(status(book, dead).announceState == .active)
        #expect(status(book, dead).lastAnnounceStartTime == 1000)
        book.announceFailed(dead, reason: "connect failed: ECONNREFUSED", timedOut: false, now: 1001)
        book.announceStarted(live, now: 1001)
        book.announceSucceeded(live, peerCount: 3, seeders: 2, leechers: 1, warning: nil, now: 1002)

        let failed = status(book, dead)
        #expect(failed.hasAnnounced && !failed.lastAnnounceSucceeded && !failed.lastAnnounceTimedOut)
        #expect(failed.lastAnnounceResult == "connect failed: ECONNREFUSED")
        #expect(failed.lastAnnounceTime == 1001)
        #expect(failed.seederCount == nil)
        let answered = status(book, live)
        #expect(answered.lastAnnounceSucceeded && answered.lastAnnounceResult == "Success")
        #expect(answered.lastAnnouncePeerCount == 3 && answered.lastAnnounceTime == 1002)
        #expect(answered.seederCount == 2 && answered.leecherCount == 1)
    }

    @Test func theComingRoundWalksUpToTheTrackerThatAnswered() {
        var book = TrackerStatusBook(trackers: [dead, live, spare])
        book.schedule(trying: [dead, live, spare], through: live, dueTime: 2800)
        #expect(book.statuses.map(\.announceState) == [.waiting, .waiting, .inactive])
        #expect(book.statuses.map(\.nextAnnounceTime) == [2800, 2800, 0])
        #expect(book.statuses.map(\.isBackup) == [false, false, true])

        // In flight stays active; a host name being resolved is queued.
        book.announceStarted(dead, now: 2800)
        book.schedule(trying: [dead, live, spare], through: spare, dueTime: 2800, queued: true)
        #expect(book.statuses.map(\.announceState) == [.active, .queued, .queued])

        // Stopped: nothing is scheduled.
        book.announceAbandoned(dead)
        book.schedule(trying: [dead, live, spare], through: nil, dueTime: 0)
        #expect(book.statuses.allSatisfy { $0.announceState == .inactive && $0.nextAnnounceTime == 0 })
    }

    @Test func scrapesCountTheSwarm() {
        var book = TrackerStatusBook(trackers: [dead, live])
        book.scrapeStarted(live, now: 50)
        #expect(status(book, live).scrapeState == .active)
        book.scrapeSucceeded(live, seeders: 4, leechers: 5, downloads: 6, nextTime: 1850, now: 51)
        book.scrapeFailed(
            dead, reason: "no answer to scrape within 30 s", timedOut: true, nextTime: 1850, now: 80)
        let scraped = status(book, live)
        #expect(scraped.hasScraped && scraped.lastScrapeSucceeded && scraped.lastScrapeTime == 51)
        #expect(scraped.seederCount == 4 && scraped.leecherCount == 5 && scraped.downloadCount == 6)
        #expect(scraped.scrapeState == .waiting && scraped.nextScrapeTime == 1850)
        let failed = status(book, dead)
        #expect(failed.hasScraped && !failed.lastScrapeSucceeded && failed.lastScrapeTimedOut)
        #expect(failed.lastScrapeResult == "no answer to scrape within 30 s")
    }

    @Test func aTrackersTextIsBounded() {
        var book = TrackerStatusBook(trackers: [dead])
        book.announceFailed(dead, reason: String(repeating: "x", count: 10_000), timedOut: false, now: 1)
        #expect(status(book, dead).lastAnnounceResult.count == TrackerStatusBook.maximumResultLength)
        book.announceSucceeded(
            dead, peerCount: 0, seeders: nil, leechers: nil, warning: String(repeating: "w", count: 500),
            now: 2)
        #expect(status(book, dead).lastAnnounceResult.count == TrackerStatusBook.maximumResultLength)
    }

    @Test func anEditKeepsTheHistoryOfTrackersThatStay() {
        var book = TrackerStatusBook(trackers: [dead, live])
        book.announceSucceeded(live, peerCount: 1, seeders: nil, leechers: nil, warning: nil, now: 9)
        book.replaceTrackers([spare, live, live])
        #expect(book.statuses.map(\.announce) == [spare.description, live.description])
        #expect(status(book, live).lastAnnounceTime == 9)
        #expect(!status(book, spare).hasAnnounced)
    }
}
