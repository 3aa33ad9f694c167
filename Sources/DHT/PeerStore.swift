import TorrentModel

/// The peers other nodes announced to us, by infohash, each until it expires (30 minutes after its last
/// announce). Both dimensions are bounded: announces past `maxInfoHashes` or `maxPeersPerInfoHash` are
/// refused, so a flood of announces costs a fixed amount of memory.
struct PeerStore: Sendable {
    let maxInfoHashes: Int
    let maxPeersPerInfoHash: Int
    let lifetimeNanoseconds: UInt64
    private var peers: [InfoHash: [DHTEndpoint: Instant]] = [:]

    init(maxInfoHashes: Int, maxPeersPerInfoHash: Int, lifetimeNanoseconds: UInt64) {
        self.maxInfoHashes = maxInfoHashes
        self.maxPeersPerInfoHash = maxPeersPerInfoHash
        self.lifetimeNanoseconds = lifetimeNanoseconds
    }

    var infoHashCount: Int { peers.count }

    /// Stores or refreshes `peer`; false when a bound refused it.
    @discardableResult
    mutating func store(_ peer: DHTEndpoint, for infoHash: InfoHash, now: Instant) -> Bool {
        let expiry = now.advanced(byNanoseconds: lifetimeNanoseconds)
        if let count = peers[infoHash]?.count {
            guard peers[infoHash]?[peer] != nil || count < maxPeersPerInfoHash else { return false }
            // Changed in place: a copy taken out and put back would copy every entry at each announce.
            peers[infoHash]![peer] = expiry
            return true
        }
        guard peers.count < maxInfoHashes else { return false }
        peers[infoHash] = [peer: expiry]
        return true
    }

    /// Up to `limit` stored peers of `family` for `infoHash`, picked at random so that every peer gets
    /// handed out when there are more than fit in one answer.
    func peers(
        for infoHash: InfoHash, family: DHTAddressFamily, limit: Int, random: inout SeededRandom
    ) -> [DHTEndpoint] {
        guard let entries = peers[infoHash] else { return [] }
        let matching = entries.keys.filter { $0.family == family }
        guard matching.count > limit else { return Array(matching) }
        return Array(matching.shuffled(using: &random).prefix(limit))
    }

    /// Drops every peer whose announce has expired.
    mutating func expire(now: Instant) {
        for (infoHash, entries) in peers {
            let live = entries.filter { $0.value > now }
            peers[infoHash] = live.isEmpty ? nil : live
        }
    }
}
