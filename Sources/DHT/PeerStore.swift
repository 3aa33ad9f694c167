import TorrentModel

/// The peers other nodes announced to us, by infohash, each until it expires (30 minutes after its last
/// announce). Every dimension is bounded: announces past `maxInfoHashes` or `maxPeersPerInfoHash` are
/// refused, so a flood of announces costs a fixed amount of memory. One host (an IPv4 address, an IPv6
/// /64) is one peer of an infohash (its latest address and port, as libtorrent keeps them), and holds a
/// place under at most `maxInfoHashesPerAddress` infohashes, so that one host cannot fill the store and
/// have every other announce refused.
struct PeerStore: Sendable {
    let maxInfoHashes: Int
    let maxPeersPerInfoHash: Int
    let maxInfoHashesPerAddress: Int
    let lifetimeNanoseconds: UInt64

    private struct Entry: Sendable {
        var address: DHTIPAddress
        var port: UInt16
        var expiry: Instant
    }

    /// By host (``DHTIPAddress/host``).
    private var peers: [InfoHash: [DHTIPAddress: Entry]] = [:]
    /// Under how many infohashes each host is stored.
    private var holdings: [DHTIPAddress: Int] = [:]

    init(
        maxInfoHashes: Int, maxPeersPerInfoHash: Int, maxInfoHashesPerAddress: Int = 64,
        lifetimeNanoseconds: UInt64
    ) {
        self.maxInfoHashes = maxInfoHashes
        self.maxPeersPerInfoHash = maxPeersPerInfoHash
        self.maxInfoHashesPerAddress = maxInfoHashesPerAddress
        self.lifetimeNanoseconds = lifetimeNanoseconds
    }

    var infoHashCount: Int { peers.count }

    /// Stores or refreshes `peer`; false when a bound refused it.
    @discardableResult
    mutating func store(_ peer: DHTEndpoint, for infoHash: InfoHash, now: Instant) -> Bool {
        let host = peer.address.host
        let entry = Entry(
            address: peer.address, port: peer.port, expiry: now.advanced(byNanoseconds: lifetimeNanoseconds))
        if peers[infoHash]?[host] != nil {
            // Changed in place: a copy taken out and put back would copy every entry at each announce.
            peers[infoHash]![host] = entry
            return true
        }
        guard holdings[host, default: 0] < maxInfoHashesPerAddress else { return false }
        if let count = peers[infoHash]?.count {
            guard count < maxPeersPerInfoHash else { return false }
            peers[infoHash]![host] = entry
        } else {
            guard peers.count < maxInfoHashes else { return false }
            peers[infoHash] = [host: entry]
        }
        holdings[host, default: 0] += 1
        return true
    }

    /// Up to `limit` stored peers of `family` for `infoHash`, picked at random so that every peer gets
    /// handed out when there are more than fit in one answer.
    func peers(
        for infoHash: InfoHash, family: DHTAddressFamily, limit: Int, random: inout SeededRandom
    ) -> [DHTEndpoint] {
        guard let entries = peers[infoHash] else { return [] }
        let matching = entries.values.compactMap { entry in
            entry.address.family == family ? DHTEndpoint(address: entry.address, port: entry.port) : nil
        }
        guard matching.count > limit else { return matching }
        return Array(matching.shuffled(using: &random).prefix(limit))
    }

    /// Drops every peer whose announce has expired.
    mutating func expire(now: Instant) {
        for (infoHash, entries) in peers {
            let live = entries.filter { $0.value.expiry > now }
            guard live.count < entries.count else { continue }
            for address in entries.keys where live[address] == nil {
                let left = holdings[address, default: 1] - 1
                holdings[address] = left > 0 ? left : nil
            }
            peers[infoHash] = live.isEmpty ? nil : live
        }
    }
}
