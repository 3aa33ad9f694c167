import TorrentModel

/// Names one lookup in the events a ``DHTNode`` emits.
public struct LookupID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt32
    public var description: String { "lookup#\(value)" }
}

/// What a finished lookup found.
public struct LookupResult: Hashable, Sendable {
    /// The id or infohash looked up.
    public var target: NodeID
    /// The closest nodes that answered, closest first (at most K).
    public var closestNodes: [DHTNodeInfo]
    /// How many distinct peers a `get_peers` lookup reported in its `peersFound` events.
    public var peerCount: Int
    /// How many nodes were sent an `announce_peer`.
    public var announcedTo: Int
    /// The longest chain of answers that led to one of `closestNodes`: 1 when our table held it, one
    /// more for each answer on the way. Kademlia bounds it by about log2 of the network's size.
    public var rounds: Int
}

/// An iterative Kademlia lookup (`find_node` or `get_peers`): a candidate list sorted by distance to the
/// target, of which the closest unasked ones are queried, `alpha` at a time.
///
/// A node answering under another id than the one it was named with counts under the id it gave.
///
/// A query that has not answered after the soft timeout stops counting against `alpha`, so the lookup
/// widens past a slow node, but a late answer is still used; after the hard timeout the node has
/// failed. The lookup is done when the K closest candidates that have not failed (and one more for each
/// that failed among them, up to K / 2) have all answered, or nothing is left to ask.
///
/// Invariants: `candidates` is sorted by distance (nodes of unknown id, the bootstrap endpoints, last);
/// no endpoint appears twice; at most `maxCandidates` are kept; every endpoint is asked at most once.
struct Lookup: Sendable {
    /// The port an `announce_peer` at the end of a `get_peers` lookup names.
    struct Announcement: Hashable, Sendable {
        var port: UInt16
        /// Ask the storing nodes to use the datagram's source port instead (BEP 5's `implied_port`).
        var impliedPort: Bool
    }

    enum Purpose: Hashable, Sendable {
        case findNode
        case getPeers(announce: Announcement?)
    }

    enum CandidateState: Hashable, Sendable {
        case fresh
        case inFlight(since: Instant)
        /// Past the soft timeout, still waiting.
        case slow
        case responded
        case failed
    }

    struct Candidate: Sendable {
        var id: NodeID?
        var endpoint: DHTEndpoint
        var distance: DHTKey
        var state: CandidateState = .fresh
        var token: [UInt8]?
        var isVerified = false
        /// Whether a query to it already failed once: a lost datagram gets one more try.
        var hasFailedOnce = false
        /// 1 for a node from our table or a bootstrap endpoint, else 1 + the round of the first node
        /// that named it.
        var round = 1
    }

    static let maxCandidates = 128
    static let maxPeers = 4096

    let id: LookupID
    let startedAt: Instant
    let target: NodeID
    let purpose: Purpose
    /// Whether the caller started it (and so gets events), rather than table maintenance.
    let reportsToCaller: Bool
    let bucketSize: Int
    /// With BEP 42 enforced, nodes whose id does not match their IP neither end the lookup nor get
    /// announced to.
    let requiresVerifiedIDs: Bool
    private(set) var candidates: [Candidate] = []
    private var seenEndpoints: Set<DHTEndpoint> = []
    /// The IPv4 /24s and IPv6 /64s of the nodes taken as candidates.
    private var seenSubnets: Set<DHTIPAddress> = []
    private(set) var peers: Set<DHTEndpoint> = []

    init(
        id: LookupID, startedAt: Instant, target: NodeID, purpose: Purpose, reportsToCaller: Bool,
        bucketSize: Int, requiresVerifiedIDs: Bool
    ) {
        self.id = id
        self.startedAt = startedAt
        self.target = target
        self.purpose = purpose
        self.reportsToCaller = reportsToCaller
        self.bucketSize = bucketSize
        self.requiresVerifiedIDs = requiresVerifiedIDs
    }

    var infoHash: InfoHash? {
        if case .getPeers = purpose { InfoHash(reinterpreting: target) } else { nil }
    }

    /// Adds nodes to ask, learned in an answer of round `round - 1` (1: from our table); ignores
    /// endpoints seen before and trims the farthest unasked ones past the cap.
    mutating func add(_ nodes: [DHTNodeInfo], round: Int = 1, ownID: NodeID) {
        for node in nodes where node.id != ownID {
            add(
                Candidate(
                    id: node.id, endpoint: node.endpoint, distance: node.id.distance(to: target), round: round
                ))
        }
    }

    /// Adds endpoints whose ids are unknown (bootstrap routers); they sort last until they answer.
    mutating func add(endpoints: [DHTEndpoint]) {
        for endpoint in endpoints { add(Candidate(id: nil, endpoint: endpoint, distance: .maximum)) }
    }

    /// One node per IPv4 /24 or IPv6 /64 (as libtorrent restricts its searches): one host answering
    /// with dozens of its own ports under ids close to the target would otherwise be all the lookup
    /// finds, gets announced to, and is free to point at a victim. Private and loopback addresses are
    /// exempt (a LAN, a lab), as BEP 42 exempts them; so are bootstrap endpoints, which have no id.
    private mutating func add(_ candidate: Candidate) {
        let address = candidate.endpoint.address
        guard candidate.endpoint.port != 0, !address.isUnroutable,
            seenEndpoints.count < Self.maxCandidates * 8, !seenEndpoints.contains(candidate.endpoint),
            candidate.id == nil || address.isLocal || seenSubnets.insert(address.subnet).inserted
        else { return }
        seenEndpoints.insert(candidate.endpoint)
        let position = candidates.firstIndex { $0.distance > candidate.distance } ?? candidates.endIndex
        candidates.insert(candidate, at: position)
        if candidates.count > Self.maxCandidates,
            let farthest = candidates.lastIndex(where: { $0.state == .fresh || $0.state == .failed })
        {
            candidates.remove(at: farthest)
        }
    }

    /// Marks queries older than the soft timeout slow, freeing their place in `alpha`.
    mutating func applySoftTimeout(now: Instant, softTimeout: UInt64) {
        for index in candidates.indices {
            if case .inFlight(let since) = candidates[index].state,
                now.nanoseconds(since: since) >= softTimeout
            {
                candidates[index].state = .slow
            }
        }
    }

    /// Candidates that count for termination: not failed, and verified if that is required.
    private func counts(_ candidate: Candidate) -> Bool {
        candidate.state != .failed
            && !(requiresVerifiedIDs && candidate.state == .responded && !candidate.isVerified)
    }

    /// Failed candidates closer than the K-th that counts. Each took the place of a live node in the
    /// answers that named it, so one more node is asked for each: the nodes just past the K closest may
    /// name the live nodes the dead ones crowded out. At most K / 2.
    private var failedAmongClosest: Int {
        var counted = 0
        var failed = 0
        for candidate in candidates where counted < bucketSize {
            if counts(candidate) {
                counted += 1
            } else if candidate.state == .failed {
                failed += 1
            }
        }
        // Bounded, so that a liar naming K made-up nodes cannot make a lookup ask on and on.
        return min(failed, bucketSize / 2)
    }

    /// The indices of the candidates to query now, marked in flight. Only candidates among the K closest
    /// that count (widened by one for each slow query) are worth asking.
    mutating func nextQueries(alpha: Int, now: Instant) -> [Int] {
        var inFlight = 0
        var slow = 0
        for candidate in candidates {
            if case .inFlight = candidate.state { inFlight += 1 }
            if candidate.state == .slow { slow += 1 }
        }
        var chosen: [Int] = []
        var window = bucketSize + slow + failedAmongClosest
        for index in candidates.indices where inFlight + chosen.count < alpha && window > 0 {
            guard counts(candidates[index]) else { continue }
            window -= 1
            if candidates[index].state == .fresh {
                candidates[index].state = .inFlight(since: now)
                chosen.append(index)
            }
        }
        return chosen
    }

    /// Whether the lookup has converged: the K closest counting candidates have all answered, or there
    /// is nothing in flight and nothing left worth asking.
    var isFinished: Bool {
        let counting = candidates.lazy.filter(counts)
        if counting.prefix(bucketSize + failedAmongClosest).allSatisfy({ $0.state == .responded }) {
            return true
        }
        return !counting.contains { candidate in
            switch candidate.state {
            case .fresh, .inFlight, .slow: true
            case .responded, .failed: false
            }
        }
    }

    /// The candidate asked at `endpoint`, if it is waiting for an answer.
    func pendingIndex(of endpoint: DHTEndpoint) -> Int? {
        candidates.firstIndex { candidate in
            guard candidate.endpoint == endpoint else { return false }
            switch candidate.state {
            case .inFlight, .slow: return true
            default: return false
            }
        }
    }

    /// Records an answer: its nodes join the candidates and its new peers are returned.
    mutating func responded(
        at index: Int, response: KRPCResponse, isVerified: Bool, family: DHTAddressFamily, ownID: NodeID
    ) -> [DHTEndpoint] {
        var candidate = candidates[index]
        candidate.state = .responded
        candidate.isVerified = isVerified
        candidate.token = response.token
        if candidate.id != response.sender {
            // A bootstrap endpoint, or a node named under another id (a stale entry, or a lie meant to
            // keep the real node out of the lookup, as endpoints are asked once): its answer is genuine,
            // so it takes its place by the id it answers with.
            candidates.remove(at: index)
            candidate.id = response.sender
            candidate.distance = response.sender.distance(to: target)
            let position = candidates.firstIndex { $0.distance > candidate.distance } ?? candidates.endIndex
            candidates.insert(candidate, at: position)
        } else {
            candidates[index] = candidate
        }
        add(family == .ipv4 ? response.nodes : response.nodes6, round: candidate.round + 1, ownID: ownID)
        guard case .getPeers = purpose else { return [] }
        var fresh: [DHTEndpoint] = []
        // Port 0 and unroutable addresses (0/8, multicast, broadcast) can be nobody's: junk that would
        // take places among the torrent's candidates.
        for peer in response.values
        where peer.family == family && peer.port != 0 && !peer.address.isUnroutable
            && peers.count < Self.maxPeers
        {
            if peers.insert(peer).inserted { fresh.append(peer) }
        }
        return fresh
    }

    /// A query timed out or was refused: asked once more (UDP loses datagrams), then given up on.
    mutating func failed(at index: Int) {
        candidates[index].state = candidates[index].hasFailedOnce ? .failed : .fresh
        candidates[index].hasFailedOnce = true
    }

    /// Puts a query that could not be sent back, to be asked on a later tick.
    mutating func deferQuery(at index: Int) { candidates[index].state = .fresh }

    /// The K closest counting candidates that answered.
    var closestResponders: [Candidate] {
        Array(candidates.filter { $0.state == .responded && counts($0) && $0.id != nil }.prefix(bucketSize))
    }
}
