import Bencode
import TorrentModel

/// Swarm statistics for one torrent from a scrape (BEP 48 over HTTP, BEP 15 over UDP).
public struct ScrapeEntry: Hashable, Sendable {
    /// The torrent these numbers describe.
    public var infoHash: InfoHash
    /// Peers that have the whole torrent (`complete`; BEP 15 "seeders").
    public var seederCount: Int64
    /// Peers that have ever completed it (`downloaded`; BEP 15 "completed").
    public var completedCount: Int64
    /// Peers still downloading (`incomplete`; BEP 15 "leechers").
    public var leecherCount: Int64

    /// An entry from its parts.
    public init(infoHash: InfoHash, seederCount: Int64, completedCount: Int64, leecherCount: Int64) {
        self.infoHash = infoHash
        self.seederCount = seederCount
        self.completedCount = completedCount
        self.leecherCount = leecherCount
    }
}

/// HTTP scrape (BEP 48).
public enum Scrape {
    /// The scrape URL for an HTTP(S) announce URL: the last path segment must start with `announce`,
    /// and that word becomes `scrape` (`/x/announce.php?k=1` → `/x/scrape.php?k=1`). Any other announce
    /// URL has no scrape URL and ``TrackerError/scrapeNotSupported(url:)`` is thrown; so are UDP URLs,
    /// which scrape with their own packet (BEP 15).
    public static func url(announce: TrackerURL) throws(TrackerError) -> TrackerURL {
        guard announce.scheme != .udp else { throw .wrongTransport(url: announce.description) }
        let path = announce.path
        let segmentStart = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let segment = path[segmentStart...]
        guard segment.hasPrefix("announce") else { throw .scrapeNotSupported(url: announce.description) }
        var url = announce
        url.path = String(path[..<segmentStart]) + "scrape" + segment.dropFirst("announce".count)
        return url
    }

    /// The scrape request URL asking about `infoHashes` (one `info_hash` parameter each).
    public static func requestURL(
        announce: TrackerURL, infoHashes: [InfoHash]
    ) throws(TrackerError)
        -> TrackerURL
    {
        let parameters = infoHashes.map { "info_hash=" + percentEncode($0.bytes) }.joined(separator: "&")
        return try url(announce: announce).appendingQuery(parameters)
    }

    /// Parses a scrape response body: `files` maps 20-byte infohashes to `complete`, `downloaded` and
    /// `incomplete` (a missing count is 0, since some trackers leave out `downloaded`). The entries come
    /// back in the dictionary's (sorted) order. A `failure reason` (BEP 48 also mentions
    /// `failure_reason`) is thrown as ``TrackerError/trackerFailure(reason:)``.
    public static func parseResponse(
        _ body: [UInt8], limits: TrackerLimits = TrackerLimits()
    )
        throws(TrackerError) -> [ScrapeEntry]
    {
        let root = try decodeDictionary(body, limits: limits)
        if let failure = root["failure reason"] ?? root["failure_reason"] {
            throw .trackerFailure(reason: limits.message(try byteString(failure, key: "failure reason")))
        }
        guard let files = root["files"] else { throw .missingKey("files") }
        guard let entries = files.dictionary else {
            throw .wrongType(key: "files", expected: .dictionary, found: files.kind)
        }
        guard entries.count <= limits.maxScrapeEntryCount else {
            throw .tooManyScrapeEntries(count: entries.count, limit: limits.maxScrapeEntryCount)
        }
        var result: [ScrapeEntry] = []
        result.reserveCapacity(entries.count)
        for entry in entries {
            guard let infoHash = InfoHash(entry.key) else {
                throw .invalidInfoHashKey(byteCount: entry.key.count)
            }
            let stats = entry.value
            guard stats.kind == .dictionary else {
                throw .notADictionary(context: "scrape entry \(infoHash)")
            }
            func field(_ key: String) throws(TrackerError) -> Int64 {
                guard let node = stats[key] else { return 0 }
                return try count(node, key: key)
            }
            result.append(
                ScrapeEntry(
                    infoHash: infoHash, seederCount: try field("complete"),
                    completedCount: try field("downloaded"), leecherCount: try field("incomplete")))
        }
        return result
    }
}
