import Foundation
import Tracker
import TransmissionRPC

/// A torrent's trackers as clients see and edit them: BEP 12 tiers, each tracker with an id that stays
/// the same across edits and restarts (torrent-set's `trackerRemove` and `trackerReplace` name trackers
/// by the ids torrent-get gave). Pure: the backend keeps it in the torrent's settings once edited and
/// hands its tiers to the engine.
///
/// Invariants: trackers are in tier order, tiers numbered from 0 without gaps; no URL appears twice;
/// ids are unique and below `nextID`; at most ``maximumTrackers`` trackers.
struct AnnounceList: Codable, Sendable, Hashable {
    struct Tracker: Codable, Sendable, Hashable {
        var id: Int
        var tier: Int
        var announce: String
    }

    /// A client cannot make a torrent announce to more trackers than this.
    static let maximumTrackers = 100
    /// Longer announce URLs are refused.
    static let maximumURLBytes = 2048

    private(set) var trackers: [Tracker] = []
    /// The id the next added tracker gets: ids of removed trackers are not given out again.
    private(set) var nextID = 0

    /// Ids past this are not read back from a state file (the next would overflow).
    static let maximumID = Int(Int32.max)
    /// Trackers read back from a state file at most (a metainfo's list, edited, may exceed
    /// ``maximumTrackers``).
    static let maximumStoredTrackers = 10_000

    /// Read back from the state folder, which may have been damaged: the invariants are restored, not
    /// trusted (duplicate ids or URLs dropped, tiers renumbered, ids and their count bounded), since a
    /// huge `nextID` or tier would stop the daemon at its next edit.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var ids = Set<Int>()
        var urls = Set<String>()
        for tracker in try container.decode([Tracker].self, forKey: .trackers)
        where (0...Self.maximumID).contains(tracker.id) && trackers.count < Self.maximumStoredTrackers
            && ids.insert(tracker.id).inserted && urls.insert(tracker.announce).inserted
        {
            trackers.append(tracker)
        }
        renumberTiers()
        let storedNextID = try container.decodeIfPresent(Int.self, forKey: .nextID) ?? 0
        nextID = max(min(storedNextID, Self.maximumID), (ids.max() ?? -1) + 1)
    }

    /// The metainfo's (or magnet link's) tiers, ids numbered from 0 in order. URLs the engine could not
    /// use are listed all the same: they are what the torrent says.
    init(tiers: [[String]]) {
        var seen = Set<String>()
        for tier in tiers {
            let urls = tier.filter { seen.insert($0).inserted }
            guard !urls.isEmpty else { continue }
            let number = (trackers.last?.tier ?? -1) + 1
            for url in urls { append(url, tier: number) }
        }
    }

    /// The tiers, for the engine.
    var tiers: [[String]] {
        var tiers: [[String]] = []
        var previousTier: Int?
        for tracker in trackers {
            if previousTier != tracker.tier { tiers.append([]) }
            tiers[tiers.count - 1].append(tracker.announce)
            previousTier = tracker.tier
        }
        return tiers
    }

    /// `trackerAdd`: each new announce URL in a tier of its own after the others, as Transmission does;
    /// URLs already listed are skipped. Throws when none is new, or one is not a usable announce URL.
    mutating func add(_ urls: [String]) throws(RPCFailure) {
        var added = false
        var listed = Set(trackers.map(\.announce))
        for url in urls {
            try Self.check(url)
            guard listed.insert(url).inserted else { continue }
            try checkRoom()
            append(url, tier: (trackers.last?.tier ?? -1) + 1)
            added = true
        }
        if !added { throw RPCFailure("trackerAdd: every announce URL given is already listed") }
    }

    /// `trackerRemove`: the trackers with these ids go, their tiers closing up. Throws when an id names
    /// no tracker.
    mutating func remove(ids: [Int]) throws(RPCFailure) {
        let known = Set(trackers.map(\.id))
        if let unknown = ids.first(where: { !known.contains($0) }) {
            throw RPCFailure("trackerRemove: no tracker has id \(unknown)")
        }
        let removed = Set(ids)
        trackers.removeAll { removed.contains($0.id) }
        renumberTiers()
    }

    /// `trackerReplace`: each tracker named by id gets a new announce URL, keeping its id and tier.
    mutating func replace(_ replacements: [TrackerReplacement]) throws(RPCFailure) {
        // Looked up, not searched: a request may name a million replacements, a torrent list thousands.
        let indexByID = Dictionary(trackers.indices.map { (trackers[$0].id, $0) }) { first, _ in first }
        var idByURL = Dictionary(trackers.map { ($0.announce, $0.id) }) { first, _ in first }
        for replacement in replacements {
            try Self.check(replacement.announce)
            guard let index = indexByID[replacement.id] else {
                throw RPCFailure("trackerReplace: no tracker has id \(replacement.id)")
            }
            if let holder = idByURL[replacement.announce], holder != replacement.id {
                throw RPCFailure("trackerReplace: \(replacement.announce) is already listed")
            }
            idByURL[trackers[index].announce] = nil
            trackers[index].announce = replacement.announce
            idByURL[replacement.announce] = replacement.id
        }
    }

    /// `trackerList`: the whole list from its text (one URL per line, a blank line between tiers).
    /// Trackers still listed keep their ids; an empty text removes every tracker.
    mutating func setList(_ text: String) throws(RPCFailure) {
        try setList(tiers: Self.parse(text))
    }

    /// `trackerList` as ``parse(_:)`` read it (once for all the torrents a request names).
    mutating func setList(tiers: [[String]]) throws(RPCFailure) {
        let previous = Dictionary(trackers.map { ($0.announce, $0.id) }) { first, _ in first }
        let count = tiers.reduce(0) { $0 + $1.count }
        guard count <= Self.maximumTrackers else {
            throw RPCFailure("trackerList: more than \(Self.maximumTrackers) trackers")
        }
        trackers = []
        for (tier, urls) in tiers.enumerated() {
            for url in urls {
                if let id = previous[url] {
                    trackers.append(Tracker(id: id, tier: tier, announce: url))
                } else {
                    append(url, tier: tier)
                }
            }
        }
    }

    /// The tiers of a `trackerList` text: lines trimmed, a blank line (or several) ending a tier,
    /// URLs listed twice kept once. Throws for a line that is not a usable announce URL.
    static func parse(_ text: String) throws(RPCFailure) -> [[String]] {
        var tiers: [[String]] = [[]]
        var seen = Set<String>()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let url = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if url.isEmpty {
                if !tiers[tiers.count - 1].isEmpty { tiers.append([]) }
                continue
            }
            try check(url)
            if seen.insert(url).inserted { tiers[tiers.count - 1].append(url) }
        }
        return tiers.filter { !$0.isEmpty }
    }

    /// Refuses what the engine could not announce to (the scheme, host and port `TrackerURL` accepts).
    private static func check(_ url: String) throws(RPCFailure) {
        guard url.utf8.count <= maximumURLBytes else {
            throw RPCFailure("announce URL longer than \(maximumURLBytes) bytes")
        }
        do {
            _ = try TrackerURL(url)
        } catch {
            throw RPCFailure("invalid announce URL \(url): \(error)")
        }
    }

    private func checkRoom() throws(RPCFailure) {
        guard trackers.count < Self.maximumTrackers else {
            throw RPCFailure("a torrent cannot have more than \(Self.maximumTrackers) trackers")
        }
    }

    private mutating func append(_ url: String, tier: Int) {
        trackers.append(Tracker(id: nextID, tier: tier, announce: url))
        nextID += 1
    }

    /// Tiers numbered 0, 1, 2… again after some emptied.
    private mutating func renumberTiers() {
        var number = -1
        var previousTier: Int?
        for index in trackers.indices {
            if trackers[index].tier != previousTier {
                number += 1
                previousTier = trackers[index].tier
            }
            trackers[index].tier = number
        }
    }
}
