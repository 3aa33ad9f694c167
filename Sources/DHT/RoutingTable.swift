import TorrentModel

/// How the routing table judges and limits nodes.
public struct RoutingTableOptions: Hashable, Sendable {
    /// K: nodes per bucket, and nodes returned by a closest-nodes query. 8 in BEP 5.
    public var bucketSize: Int
    /// Replacement candidates kept per bucket, waiting for a member to go bad.
    public var replacementsPerBucket: Int
    /// Inactivity after which a good node becomes questionable: 15 minutes.
    public var questionableAfterNanoseconds: UInt64
    /// Failed queries in a row after which a node is bad: 2 (BEP 5 suggests one retry).
    public var failuresUntilBad: Int
    /// At most one node per IPv4 /24 or IPv6 /64 in each bucket, so one operator cannot fill it.
    public var oneNodePerSubnetPerBucket: Bool

    public init(
        bucketSize: Int = 8, replacementsPerBucket: Int = 8,
        questionableAfterNanoseconds: UInt64 = 15 * 60 * 1_000_000_000,
        failuresUntilBad: Int = 2, oneNodePerSubnetPerBucket: Bool = true
    ) {
        self.bucketSize = max(1, bucketSize)
        self.replacementsPerBucket = max(0, replacementsPerBucket)
        self.questionableAfterNanoseconds = questionableAfterNanoseconds
        self.failuresUntilBad = max(1, failuresUntilBad)
        self.oneNodePerSubnetPerBucket = oneNodePerSubnetPerBucket
    }
}

/// What the routing table thinks of a node (BEP 5).
public enum NodeStatus: Hashable, Sendable {
    /// Answered a query of ours within the last 15 minutes, or answered once and queried us since.
    case good
    /// Inactive for 15 minutes: still used, but pinged before it is trusted over a newcomer.
    case questionable
    /// Failed `failuresUntilBad` queries in a row; replaced first.
    case bad
}

/// One node the table knows.
struct RoutingEntry: Sendable {
    var info: DHTNodeInfo
    /// Whether its id matches its IP under BEP 42 (local addresses always match).
    var isVerified: Bool
    var lastResponse: Instant?
    var lastQuery: Instant?
    var failedQueries = 0
    /// When we last pinged it to check on it, so that it is not pinged again before that ping resolves.
    var checkedAt: Instant?

    var key: DHTKey { DHTKey(info.id) }
    var lastActivity: Instant { max(lastResponse ?? .zero, lastQuery ?? .zero) }

    func status(now: Instant, options: RoutingTableOptions) -> NodeStatus {
        if failedQueries >= options.failuresUntilBad { return .bad }
        guard let lastResponse else { return .questionable }
        let window = options.questionableAfterNanoseconds
        if now.nanoseconds(since: lastResponse) < window { return .good }
        if let lastQuery, now.nanoseconds(since: lastQuery) < window { return .good }
        return .questionable
    }
}

/// One bucket: the nodes whose distance from our id has `index` leading zero bits (the last bucket
/// holds all nodes at least that close).
struct Bucket: Sendable {
    var nodes: [RoutingEntry] = []
    var replacements: [RoutingEntry] = []
    var lastChanged: Instant
}

/// The Kademlia routing table of BEP 5: buckets of K nodes over the 160-bit XOR space, where only the
/// bucket containing our own id splits, so the table knows the space near us in detail and the far
/// space coarsely.
///
/// Invariants:
/// - every bucket holds at most `bucketSize` nodes and `replacementsPerBucket` replacements;
/// - a node is in bucket `min(leadingZeros(id ^ ownID), buckets.count - 1)`;
/// - only the last bucket was ever split; there are at most 160 buckets;
/// - no two nodes in the table share an IP address, nor (with the option) a subnet within a bucket;
/// - our own id is never in the table.
struct RoutingTable: Sendable {
    let ownID: NodeID
    let ownKey: DHTKey
    let options: RoutingTableOptions
    private(set) var buckets: [Bucket]
    /// The id of the table node at each address, enforcing one node per IP.
    private var idByAddress: [DHTIPAddress: NodeID] = [:]

    /// The outcome of offering a node that answered us.
    enum Insertion: Equatable {
        case added
        /// Known already; its times were refreshed.
        case refreshed
        /// Kept as a replacement until a bucket member goes bad.
        case replacementCandidate
        /// Refused: our own id, an address or subnet already taken, or a known id at a new address.
        case refused
    }

    init(ownID: NodeID, options: RoutingTableOptions, now: Instant) {
        self.ownID = ownID
        ownKey = DHTKey(ownID)
        self.options = options
        buckets = [Bucket(lastChanged: now)]
    }

    var nodeCount: Int { buckets.reduce(0) { $0 + $1.nodes.count } }

    /// The nodes not known bad: a table of bad nodes is as thin as an empty one.
    func liveNodeCount(now: Instant) -> Int {
        buckets.reduce(0) { count, bucket in
            count + bucket.nodes.reduce(0) { $0 + ($1.status(now: now, options: options) == .bad ? 0 : 1) }
        }
    }

    func bucketIndex(for key: DHTKey) -> Int { min((key ^ ownKey).leadingZeroBitCount, buckets.count - 1) }

    func entry(for id: NodeID) -> RoutingEntry? {
        let key = DHTKey(id)
        return buckets[bucketIndex(for: key)].nodes.first { $0.info.id == id }
    }

    func status(of id: NodeID, now: Instant) -> NodeStatus? {
        entry(for: id)?.status(now: now, options: options)
    }

    /// A node answered one of our queries: add or refresh it, or keep it as a replacement.
    mutating func nodeResponded(_ info: DHTNodeInfo, isVerified: Bool, now: Instant) -> Insertion {
        let key = DHTKey(info.id)
        guard key != ownKey else { return .refused }
        let bucketIndex = bucketIndex(for: key)
        if let position = buckets[bucketIndex].nodes.firstIndex(where: { $0.info.id == info.id }) {
            // The same id from a new address is more likely a spoofer than a move: keep the old one.
            guard buckets[bucketIndex].nodes[position].info.endpoint == info.endpoint else { return .refused }
            buckets[bucketIndex].nodes[position].lastResponse = now
            buckets[bucketIndex].nodes[position].failedQueries = 0
            buckets[bucketIndex].nodes[position].checkedAt = nil
            buckets[bucketIndex].lastChanged = now
            return .refreshed
        }
        if let holder = idByAddress[info.endpoint.address] {
            guard status(of: holder, now: now) == .bad else { return .refused }
            remove(holder)
        }
        return place(RoutingEntry(info: info, isVerified: isVerified, lastResponse: now), now: now)
    }

    /// The same nodes under a new own id (after a BEP 42 id change), each placed as it would be had it
    /// just answered, keeping its history; those that no longer fit wait as replacements.
    func rebucketed(ownID newID: NodeID, now: Instant) -> RoutingTable {
        var table = RoutingTable(ownID: newID, options: options, now: now)
        for entry in buckets.flatMap(\.nodes) where table.idByAddress[entry.info.endpoint.address] == nil {
            _ = table.place(entry, now: now)
        }
        for entry in buckets.flatMap(\.replacements) where DHTKey(entry.info.id) != table.ownKey {
            table.addReplacement(entry, to: table.bucketIndex(for: entry.key))
        }
        return table
    }

    /// Puts a node not yet in the table (and whose address is free) into its bucket, splitting, evicting
    /// a bad or (for a verified newcomer) an unverified member, or keeping it as a replacement.
    private mutating func place(_ newcomer: RoutingEntry, now: Instant) -> Insertion {
        let info = newcomer.info
        let key = newcomer.key
        guard key != ownKey else { return .refused }
        var bucketIndex = bucketIndex(for: key)
        while true {
            if options.oneNodePerSubnetPerBucket
                && buckets[bucketIndex].nodes.contains(where: {
                    $0.info.endpoint.address.subnet == info.endpoint.address.subnet
                })
            {
                return .refused
            }
            if buckets[bucketIndex].nodes.count < options.bucketSize {
                insert(newcomer, into: bucketIndex, now: now)
                return .added
            }
            let nodes = buckets[bucketIndex].nodes
            if let bad = nodes.firstIndex(where: { $0.status(now: now, options: options) == .bad }) {
                replace(at: bad, in: bucketIndex, with: newcomer, now: now)
                return .added
            }
            if bucketIndex == buckets.count - 1 && buckets.count < 160 {
                split()
                bucketIndex = self.bucketIndex(for: key)
                continue
            }
            // BEP 42: a verified newcomer displaces the longest-idle unverified member.
            if newcomer.isVerified,
                let unverified = nodes.indices.filter({ !nodes[$0].isVerified })
                    .min(by: { nodes[$0].lastActivity < nodes[$1].lastActivity })
            {
                replace(at: unverified, in: bucketIndex, with: newcomer, now: now)
                return .added
            }
            addReplacement(newcomer, to: bucketIndex)
            return .replacementCandidate
        }
    }

    /// A node queried us: if it is in the table at that address, it counts as active.
    mutating func nodeQueried(_ info: DHTNodeInfo, now: Instant) {
        let index = bucketIndex(for: DHTKey(info.id))
        guard let position = buckets[index].nodes.firstIndex(where: { $0.info == info }) else { return }
        buckets[index].nodes[position].lastQuery = now
    }

    /// A query to the node at `endpoint` timed out. When it goes bad and a replacement waits, the
    /// replacement takes its place.
    mutating func queryFailed(_ endpoint: DHTEndpoint, now: Instant) {
        guard let id = idByAddress[endpoint.address] else { return }
        let index = bucketIndex(for: DHTKey(id))
        guard let position = buckets[index].nodes.firstIndex(where: { $0.info.id == id }),
            buckets[index].nodes[position].info.endpoint == endpoint
        else { return }
        buckets[index].nodes[position].failedQueries += 1
        buckets[index].nodes[position].checkedAt = nil
        guard buckets[index].nodes[position].status(now: now, options: options) == .bad,
            let replacement = takeBestReplacement(from: index)
        else { return }
        replace(at: position, in: index, with: replacement, now: now)
    }

    /// Up to `count` live (good or questionable) nodes closest to `key`, closest first.
    func closest(to key: DHTKey, count: Int, now: Instant) -> [DHTNodeInfo] {
        // The best `count` kept sorted as the table is scanned: every find_node answer calls this, and
        // sorting the whole table was a tenth of a simulation's time.
        var best: [(distance: DHTKey, info: DHTNodeInfo)] = []
        best.reserveCapacity(count + 1)
        for bucket in buckets {
            for node in bucket.nodes where node.status(now: now, options: options) != .bad {
                let distance = node.key ^ key
                if best.count == count, let last = best.last, !(distance < last.distance) { continue }
                best.insert(
                    (distance, node.info), at: best.firstIndex { distance < $0.distance } ?? best.endIndex)
                if best.count > count { best.removeLast() }
            }
        }
        return best.map(\.info)
    }

    /// Whether a node with `id` that answers would join the table rather than wait as a replacement.
    func hasRoom(for id: NodeID, now: Instant) -> Bool {
        let index = bucketIndex(for: DHTKey(id))
        let nodes = buckets[index].nodes
        return nodes.count < options.bucketSize || (index == buckets.count - 1 && buckets.count < 160)
            || nodes.contains { $0.status(now: now, options: options) == .bad }
    }

    /// Questionable nodes to ping now: the least recently active one in each bucket that has a
    /// replacement waiting (BEP 5: ping before replacing), unless a check in that bucket began less than
    /// `checkWindow` ago. Marks them checked.
    mutating func nodesToCheck(now: Instant, checkWindow: UInt64) -> [DHTNodeInfo] {
        var due: [DHTNodeInfo] = []
        for index in buckets.indices where !buckets[index].replacements.isEmpty {
            let nodes = buckets[index].nodes
            guard
                !nodes.contains(where: {
                    $0.checkedAt.map { now.nanoseconds(since: $0) < checkWindow } ?? false
                }),
                let oldest = nodes.indices
                    .filter({ nodes[$0].status(now: now, options: options) == .questionable })
                    .min(by: { nodes[$0].lastActivity < nodes[$1].lastActivity })
            else { continue }
            buckets[index].nodes[oldest].checkedAt = now
            due.append(nodes[oldest].info)
        }
        return due
    }

    /// Buckets unchanged for `interval`, each with a random key inside it to look up (BEP 5's refresh).
    /// Marks them changed, so that each refresh starts once per interval.
    mutating func bucketsToRefresh(now: Instant, interval: UInt64, random: inout SeededRandom) -> [DHTKey] {
        var keys: [DHTKey] = []
        for index in buckets.indices where now.nanoseconds(since: buckets[index].lastChanged) >= interval {
            buckets[index].lastChanged = now
            keys.append(randomKey(inBucket: index, random: &random))
        }
        return keys
    }

    /// Buckets short of K nodes, other than the last (which holds our closest neighbours), each with a
    /// random key inside it to look up; marks them changed. A lookup of our own id meets few nodes far
    /// from us, and the nodes there rarely query us: without this, those buckets would stay nearly empty
    /// until the 15-minute refresh, and lookups for targets there would end in the wrong region.
    mutating func sparseFarBucketsToRefresh(now: Instant, random: inout SeededRandom) -> [DHTKey] {
        var keys: [DHTKey] = []
        for index in buckets.indices.dropLast() where buckets[index].nodes.count < options.bucketSize {
            buckets[index].lastChanged = now
            keys.append(randomKey(inBucket: index, random: &random))
        }
        return keys
    }

    /// A random key that falls in bucket `index`.
    private func randomKey(inBucket index: Int, random: inout SeededRandom) -> DHTKey {
        let randomKey = DHTKey.random(using: &random)
        return index == buckets.count - 1
            ? ownKey.keepingPrefix(index, randomBits: randomKey)
            : ownKey.flipping(bit: index).keepingPrefix(index + 1, randomBits: randomKey)
    }

    /// Every node in the table, good ones first, for saving.
    func allNodes(now: Instant) -> [DHTNodeInfo] {
        let entries = buckets.flatMap(\.nodes)
        return entries.filter { $0.status(now: now, options: options) == .good }.map(\.info)
            + entries.filter { $0.status(now: now, options: options) == .questionable }.map(\.info)
    }

    // MARK: - Structure

    private mutating func insert(_ entry: RoutingEntry, into index: Int, now: Instant) {
        buckets[index].nodes.append(entry)
        // Its id waiting at another address must not join later: a second copy could never go bad.
        buckets[index].replacements.removeAll {
            $0.info.endpoint.address == entry.info.endpoint.address || $0.info.id == entry.info.id
        }
        buckets[index].lastChanged = now
        idByAddress[entry.info.endpoint.address] = entry.info.id
    }

    private mutating func replace(at position: Int, in index: Int, with entry: RoutingEntry, now: Instant) {
        let old = buckets[index].nodes.remove(at: position)
        idByAddress[old.info.endpoint.address] = nil
        insert(entry, into: index, now: now)
    }

    private mutating func remove(_ id: NodeID) {
        let index = bucketIndex(for: DHTKey(id))
        guard let position = buckets[index].nodes.firstIndex(where: { $0.info.id == id }) else { return }
        let old = buckets[index].nodes.remove(at: position)
        idByAddress[old.info.endpoint.address] = nil
    }

    private mutating func addReplacement(_ entry: RoutingEntry, to index: Int) {
        guard options.replacementsPerBucket > 0 else { return }
        buckets[index].replacements.removeAll {
            $0.info.id == entry.info.id || $0.info.endpoint.address == entry.info.endpoint.address
        }
        if buckets[index].replacements.count >= options.replacementsPerBucket {
            // Drop the oldest unverified candidate if there is one, else the oldest.
            let victim = buckets[index].replacements.firstIndex { !$0.isVerified } ?? 0
            buckets[index].replacements.remove(at: victim)
        }
        buckets[index].replacements.append(entry)
    }

    /// The newest verified replacement, else the newest one, skipping any whose address or id is taken.
    private mutating func takeBestReplacement(from index: Int) -> RoutingEntry? {
        let members = buckets[index].nodes
        buckets[index].replacements.removeAll { replacement in
            idByAddress[replacement.info.endpoint.address] != nil
                || members.contains { $0.info.id == replacement.info.id }
        }
        let replacements = buckets[index].replacements
        guard let position = replacements.lastIndex(where: \.isVerified) ?? replacements.indices.last else {
            return nil
        }
        return buckets[index].replacements.remove(at: position)
    }

    /// Splits the last bucket: nodes that share one more bit with our id move to a new last bucket.
    private mutating func split() {
        let index = buckets.count - 1
        var near = Bucket(lastChanged: buckets[index].lastChanged)
        let belongsNear = { (entry: RoutingEntry) in (entry.key ^ self.ownKey).leadingZeroBitCount > index }
        near.nodes = buckets[index].nodes.filter(belongsNear)
        near.replacements = buckets[index].replacements.filter(belongsNear)
        buckets[index].nodes.removeAll(where: belongsNear)
        buckets[index].replacements.removeAll(where: belongsNear)
        buckets.append(near)
    }
}
