import TorrentModel

/// One torrent named in `ids`: by the session's number for it or by its infohash.
public enum TorrentReference: Sendable, Hashable {
    /// Transmission's torrent id: small, stable only while the daemon runs.
    case id(Int)
    /// The infohash, stable across restarts.
    case hash(InfoHash)
}

/// Which torrents a request acts on, from its `ids` argument.
public enum TorrentSelection: Sendable, Hashable {
    /// `ids` absent.
    case all
    /// `"recently-active"`: torrents with activity in the last minute (and, for torrent-get, the ids
    /// of those removed in it).
    case recentlyActive
    /// A number, a hash string, or a list of both. Empty when nothing listed could name a torrent
    /// (an empty list, or strings that are not hashes): such a request touches no torrent, as in
    /// Transmission, so a careless `"ids": []` on torrent-remove removes nothing.
    case only([TorrentReference])

    /// What decides, torrent by torrent, whether the selection names it: made once per request, its
    /// references in a set (a request may name millions of ids, and each torrent is checked).
    /// `.recentlyActive` depends on the backend's clock and activity records, so it names none here:
    /// backends resolve it themselves.
    public var matcher: Matcher {
        switch self {
        case .all: Matcher(everything: true, named: [])
        case .recentlyActive: Matcher(everything: false, named: [])
        case .only(let references): Matcher(everything: false, named: Set(references))
        }
    }

    public struct Matcher: Sendable {
        let everything: Bool
        let named: Set<TorrentReference>

        /// Whether the torrent with this id and hash is named.
        public func names(id: Int, hash: InfoHash) -> Bool {
            everything || named.contains(.id(id)) || named.contains(.hash(hash))
        }
    }
}
