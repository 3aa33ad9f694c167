/// A torrent's trackers in BEP 12 tiers, and which one to try next.
///
/// Each tier is shuffled once, when built. Trackers are tried in order: the first of the first tier,
/// then on failure the next in that tier, then the next tier. A tracker that answers moves to the front
/// of its tier and the next announce starts from the top again. A torrent with only `announce` is one
/// tier of one tracker; with `announce-list` the `announce` key is ignored, as BEP 12 says, unless the
/// list holds no usable URL.
///
/// Invariants: no tier is empty; no URL appears twice; `position`, when set, indexes an existing tracker;
/// `position` is nil only when there are no trackers, or after every tracker failed in this round.
public struct TrackerTiers: Sendable {
    /// Where in the tiers the current tracker is.
    public struct Position: Hashable, Sendable {
        /// The tier, 0 being the most preferred.
        public var tier: Int
        /// The tracker's place within its tier.
        public var index: Int
    }

    /// The usable trackers, tier by tier, in the order they will be tried.
    public private(set) var tiers: [[TrackerURL]]
    /// URLs from the metainfo that could not be used (unparseable, unsupported scheme), with the reason.
    public private(set) var rejectedURLs: [TrackerError]
    /// BEP 27: a private torrent gets peers only from its trackers, so the engine must not use DHT, PEX
    /// or local discovery for it. This type only records the flag.
    public let isPrivate: Bool
    /// The tracker being tried, or nil when there is none or all failed in this round.
    public private(set) var position: Position?

    /// Builds the tiers from the metainfo's `announce` and `announce-list`, shuffling each tier with
    /// `random`.
    public init(
        announce: String?, announceList: [[String]]?, isPrivate: Bool = false,
        random: inout some RandomNumberGenerator
    ) {
        var seen = Set<TrackerURL>()
        var rejected: [TrackerError] = []
        func usable(_ texts: [String]) -> [TrackerURL] {
            var urls: [TrackerURL] = []
            for text in texts {
                do {
                    let url = try TrackerURL(text)
                    if seen.insert(url).inserted { urls.append(url) }
                } catch {
                    rejected.append(error)
                }
            }
            return urls
        }
        var tiers: [[TrackerURL]] = []
        for tier in announceList ?? [] {
            var urls = usable(tier)
            urls.shuffle(using: &random)
            if !urls.isEmpty { tiers.append(urls) }
        }
        if tiers.isEmpty, let announce {
            let urls = usable([announce])
            if !urls.isEmpty { tiers.append(urls) }
        }
        self.tiers = tiers
        self.rejectedURLs = rejected
        self.isPrivate = isPrivate
        self.position = tiers.isEmpty ? nil : Position(tier: 0, index: 0)
    }

    /// The tracker to announce to now, or nil.
    public var current: TrackerURL? {
        position.map { tiers[$0.tier][$0.index] }
    }

    /// Every tracker, in trying order.
    public var allTrackers: [TrackerURL] { tiers.flatMap { $0 } }

    /// The current tracker answered: it moves to the front of its tier, and the next announce starts
    /// from the first tier again.
    public mutating func currentSucceeded() {
        guard let position else { return }
        let url = tiers[position.tier].remove(at: position.index)
        tiers[position.tier].insert(url, at: 0)
        self.position = Position(tier: 0, index: 0)
    }

    /// The current tracker failed: moves on to the next one and returns it, or returns nil when every
    /// tracker has failed in this round (then call ``restart()`` after a back-off).
    @discardableResult
    public mutating func currentFailed() -> TrackerURL? {
        guard var next = position else { return nil }
        next.index += 1
        if next.index == tiers[next.tier].count {
            next.tier += 1
            next.index = 0
        }
        position = next.tier < tiers.count ? next : nil
        return current
    }

    /// Starts a new round from the first tracker of the first tier.
    public mutating func restart() {
        position = tiers.isEmpty ? nil : Position(tier: 0, index: 0)
    }
}
