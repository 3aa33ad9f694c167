/// What one announce URL last did, as a front end shows it (Transmission's `tr_tracker_view`). Times
/// are Unix seconds, 0 for never.
public struct TrackerStatus: Sendable, Hashable {
    /// Where its announce stands (`tr_tracker_state`).
    public enum State: Sendable, Hashable {
        /// Not asked in the coming round.
        case inactive
        /// To be asked at `nextAnnounceTime` (or `nextScrapeTime`).
        case waiting
        /// Due, waiting for its host name to resolve.
        case queued
        /// An exchange is in flight.
        case active
    }

    /// The announce URL as the engine parsed it (`TrackerURL.description`).
    public var announce: String
    /// Not asked in the coming round: a tracker of the tiers that one before it answered for.
    public var isBackup = false
    public var announceState = State.inactive
    public var hasAnnounced = false
    public var lastAnnounceStartTime: Int64 = 0
    public var lastAnnounceTime: Int64 = 0
    public var lastAnnounceSucceeded = false
    public var lastAnnounceTimedOut = false
    /// The tracker's failure reason or warning, our error, or `Success`.
    public var lastAnnounceResult = ""
    public var lastAnnouncePeerCount = 0
    public var nextAnnounceTime: Int64 = 0
    /// Swarm counts from its last answer; nil when it has not said.
    public var seederCount: Int64?
    public var leecherCount: Int64?
    /// Completed downloads, from its last scrape.
    public var downloadCount: Int64?
    public var scrapeState = State.inactive
    public var hasScraped = false
    public var lastScrapeStartTime: Int64 = 0
    public var lastScrapeTime: Int64 = 0
    public var lastScrapeSucceeded = false
    public var lastScrapeTimedOut = false
    public var lastScrapeResult = ""
    public var nextScrapeTime: Int64 = 0

    public init(announce: String) { self.announce = announce }
}

/// Every tracker's ``TrackerStatus`` for one torrent, fed by the announcer as exchanges start and
/// end. Pure: the caller gives the wall-clock time of each event.
public struct TrackerStatusBook: Sendable {
    /// The longest result text kept: a tracker's failure reason is the tracker's to choose.
    public static let maximumResultLength = 200

    private var entries: [TrackerURL: TrackerStatus] = [:]
    private var order: [TrackerURL] = []

    public init(trackers: [TrackerURL] = []) { replaceTrackers(trackers) }

    /// Trackers in announce-list order; those kept keep their history.
    public var statuses: [TrackerStatus] { order.compactMap { entries[$0] } }

    /// The announce list changed: entries of trackers no longer listed go.
    public mutating func replaceTrackers(_ trackers: [TrackerURL]) {
        var kept: [TrackerURL: TrackerStatus] = [:]
        for url in trackers { kept[url] = entries[url] ?? TrackerStatus(announce: url.description) }
        entries = kept
        var seen = Set<TrackerURL>()
        order = trackers.filter { seen.insert($0).inserted }
    }

    /// The coming round of announces, due at `dueTime`, walks `trying` (the tiers' order) up to and
    /// including `last`; `queued` when it is due but cannot go yet. The trackers after `last` are
    /// backups, and with `last` nil (no round coming: stopped, or no trackers) every tracker is idle.
    /// A tracker in flight stays active.
    public mutating func schedule(
        trying: [TrackerURL], through last: TrackerURL?, dueTime: Int64, queued: Bool = false
    ) {
        var inRound = last != nil
        for url in trying {
            guard var entry = entries[url] else { continue }
            entry.isBackup = !inRound
            if entry.announceState != .active {
                entry.announceState = inRound ? (queued ? .queued : .waiting) : .inactive
                entry.nextAnnounceTime = inRound ? dueTime : 0
            }
            entries[url] = entry
            if url == last { inRound = false }
        }
    }

    public mutating func announceStarted(_ url: TrackerURL, now: Int64) {
        entries[url]?.announceState = .active
        entries[url]?.lastAnnounceStartTime = now
        entries[url]?.nextAnnounceTime = 0
    }

    /// The tracker answered; `warning` is its warning message, if any.
    public mutating func announceSucceeded(
        _ url: TrackerURL, peerCount: Int, seeders: Int64?, leechers: Int64?, warning: String?, now: Int64
    ) {
        guard var entry = entries[url] else { return }
        entry.announceState = .inactive
        entry.hasAnnounced = true
        entry.lastAnnounceTime = now
        entry.lastAnnounceSucceeded = true
        entry.lastAnnounceTimedOut = false
        entry.lastAnnounceResult = warning.map(Self.bounded) ?? "Success"
        entry.lastAnnouncePeerCount = peerCount
        if let seeders { entry.seederCount = seeders }
        if let leechers { entry.leecherCount = leechers }
        entries[url] = entry
    }

    /// The exchange failed: `reason` is the tracker's failure reason or our error.
    public mutating func announceFailed(_ url: TrackerURL, reason: String, timedOut: Bool, now: Int64) {
        guard var entry = entries[url] else { return }
        entry.announceState = .inactive
        entry.hasAnnounced = true
        entry.lastAnnounceTime = now
        entry.lastAnnounceSucceeded = false
        entry.lastAnnounceTimedOut = timedOut
        entry.lastAnnounceResult = Self.bounded(reason)
        entry.lastAnnouncePeerCount = 0
        entries[url] = entry
    }

    public mutating func scrapeStarted(_ url: TrackerURL, now: Int64) {
        entries[url]?.scrapeState = .active
        entries[url]?.lastScrapeStartTime = now
        entries[url]?.nextScrapeTime = 0
    }

    /// The tracker's counts for the torrent; it reports zeros for one it does not know (BEP 48).
    public mutating func scrapeSucceeded(
        _ url: TrackerURL, seeders: Int64, leechers: Int64, downloads: Int64, nextTime: Int64, now: Int64
    ) {
        guard var entry = entries[url] else { return }
        entry.scrapeState = .waiting
        entry.hasScraped = true
        entry.lastScrapeTime = now
        entry.lastScrapeSucceeded = true
        entry.lastScrapeTimedOut = false
        entry.lastScrapeResult = "Success"
        entry.nextScrapeTime = nextTime
        entry.seederCount = seeders
        entry.leecherCount = leechers
        entry.downloadCount = downloads
        entries[url] = entry
    }

    public mutating func scrapeFailed(
        _ url: TrackerURL, reason: String, timedOut: Bool, nextTime: Int64, now: Int64
    ) {
        guard var entry = entries[url] else { return }
        entry.scrapeState = .waiting
        entry.hasScraped = true
        entry.lastScrapeTime = now
        entry.lastScrapeSucceeded = false
        entry.lastScrapeTimedOut = timedOut
        entry.lastScrapeResult = Self.bounded(reason)
        entry.nextScrapeTime = nextTime
        entries[url] = entry
    }

    /// An exchange given up by us (an edit or a shutdown) is no longer in flight.
    public mutating func announceAbandoned(_ url: TrackerURL) {
        if entries[url]?.announceState == .active { entries[url]?.announceState = .inactive }
    }

    private static func bounded(_ text: String) -> String {
        text.count <= maximumResultLength ? text : String(text.prefix(maximumResultLength - 1)) + "…"
    }
}
