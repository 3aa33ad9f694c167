import TorrentModel

/// A choke decision for the engine to send.
public enum ChokeAction: Hashable, Sendable {
    case choke(PeerSlot)
    case unchoke(PeerSlot)
}

/// Decides which peers we upload to: BEP 3 tit-for-tat.
///
/// - Every `rechokeInterval` (10 s) the `regularUnchokeSlots` regular slots go to the interested peers that
///   give us the best download rates. A peer that sent us nothing for `snubTimeout` (60 s) is not a
///   reciprocator (anti-snubbing): it only gets a slot no reciprocator wants.
/// - One more, optimistic slot rotates every `optimisticUnchokeInterval` (30 s) to a random interested
///   peer, newly connected peers weighted `newPeerOptimisticWeight` times, so new peers can start
///   reciprocating and we discover better partners.
/// - When seeding, slots go to the peers we upload to fastest, but a peer that has held its slot for
///   `seedingSlotDuration` or received `seedingSlotBytes` yields to the peer that has waited longest, so
///   every interested peer is served in turn.
/// - A slot freed by a peer leaving or losing interest is given away at once, not at the next tick.
///
/// ## Invariants
/// - Only connected, interested peers are unchoked; `unchokedCount` of them are regular, plus at most one
///   optimistic (`optimisticPeer`), so at most `regularUnchokeSlots + 1` are unchoked.
/// - Actions are emitted only for changes: the engine's view equals `isUnchoked` after applying them.
public struct Choker: Sendable {
    /// Tuning; the defaults are BEP 3's and BitTorrent mainline's.
    public struct Configuration: Hashable, Sendable {
        /// Peers unchoked for reciprocation (or, seeding, for speed), besides the optimistic one.
        public var regularUnchokeSlots = 4
        /// How often the regular slots are reassigned: rarely enough for TCP to ramp up (BEP 3).
        public var rechokeInterval: Duration = .seconds(10)
        /// How often the optimistic slot moves to another peer.
        public var optimisticUnchokeInterval: Duration = .seconds(30)
        /// A peer that has sent no payload for this long does not count as a reciprocator.
        public var snubTimeout: Duration = .seconds(60)
        /// Peers connected for less than this are "new" for the optimistic draw.
        public var newPeerDuration: Duration = .seconds(90)
        /// How much likelier a new peer is to be drawn for the optimistic slot (BitTorrent's mainline: 3).
        public var newPeerOptimisticWeight = 3
        /// Seeding: how long a peer keeps its slot before yielding to one that waits.
        public var seedingSlotDuration: Duration = .seconds(30)
        /// Seeding: how many bytes a peer may receive in one turn before yielding to one that waits.
        public var seedingSlotBytes = 64 * 1024 * 1024
        /// The window for the download and upload rates that rank peers.
        public var rateWindow: Duration = .seconds(20)

        /// The defaults.
        public init() {}
    }

    /// The tuning this choker was made with.
    public let configuration: Configuration
    /// Whether we have everything and rank peers by how fast we upload to them.
    public private(set) var isSeeding = false
    /// The peer holding the optimistic slot, if any.
    public private(set) var optimisticPeer: PeerSlot?

    private var peers: [ChokerPeer] = []
    private var random: SeededRandom
    private var nextRechokeAt: Instant?
    private var nextOptimisticAt: Instant?

    /// A choker with no peers; `seed` drives the optimistic draws so runs replay.
    public init(configuration: Configuration = .init(), seed: UInt64) {
        precondition(configuration.regularUnchokeSlots >= 0)
        precondition(configuration.newPeerOptimisticWeight >= 1)
        self.configuration = configuration
        random = SeededRandom(seed: seed)
    }

    // MARK: - Queries

    /// Whether `peer` is between `peerConnected` and `peerDisconnected`.
    public func isConnected(_ peer: PeerSlot) -> Bool {
        peer.index < peers.count && peers[peer.index].isConnected
    }

    /// Whether we are currently unchoking `peer` (regular or optimistic).
    public func isUnchoked(_ peer: PeerSlot) -> Bool { isConnected(peer) && peers[peer.index].isUnchoked }

    /// The peers we unchoke, in slot order.
    public var unchokedPeers: [PeerSlot] {
        peers.indices.filter { peers[$0].isConnected && peers[$0].isUnchoked }.map { PeerSlot(UInt32($0)) }
    }

    /// How many regular (non-optimistic) slots are in use.
    public var regularUnchokedCount: Int {
        peers.indices.count { peers[$0].isConnected && peers[$0].isUnchoked && !isOptimistic($0) }
    }

    // MARK: - Events

    /// A new peer: choked and not interested until it says so.
    public mutating func peerConnected(_ peer: PeerSlot, at now: Instant) {
        while peers.count <= peer.index { peers.append(ChokerPeer()) }
        precondition(!peers[peer.index].isConnected, "\(peer) is already connected")
        peers[peer.index] = ChokerPeer(connectedAt: now, rateWindow: configuration.rateWindow)
    }

    /// The peer left; its slot is given away at once.
    public mutating func peerDisconnected(
        _ peer: PeerSlot, at now: Instant, into actions: inout [ChokeAction]
    ) {
        precondition(isConnected(peer), "\(peer) is not connected")
        let wasUnchoked = peers[peer.index].isUnchoked
        peers[peer.index].isConnected = false
        peers[peer.index].isUnchoked = false
        if optimisticPeer == peer { optimisticPeer = nil }
        if wasUnchoked { fillFreeSlots(at: now, into: &actions) }
    }

    /// The peer is interested in our pieces: if a slot is free it is unchoked now.
    public mutating func peerInterested(_ peer: PeerSlot, at now: Instant, into actions: inout [ChokeAction])
    {
        precondition(isConnected(peer), "\(peer) is not connected")
        guard !peers[peer.index].isInterested else { return }
        peers[peer.index].isInterested = true
        fillFreeSlots(at: now, into: &actions)
    }

    /// The peer lost interest: it no longer needs its slot, which goes to another peer at once.
    public mutating func peerNotInterested(
        _ peer: PeerSlot, at now: Instant, into actions: inout [ChokeAction]
    ) {
        precondition(isConnected(peer), "\(peer) is not connected")
        guard peers[peer.index].isInterested else { return }
        peers[peer.index].isInterested = false
        if peers[peer.index].isUnchoked {
            choke(peer.index, at: now, into: &actions)
            fillFreeSlots(at: now, into: &actions)
        }
    }

    /// Payload bytes we received from the peer (what tit-for-tat rewards).
    public mutating func receivedPayload(from peer: PeerSlot, bytes: Int, at now: Instant) {
        precondition(isConnected(peer), "\(peer) is not connected")
        peers[peer.index].downloadRate.record(bytes: bytes, at: now)
        peers[peer.index].lastPayloadReceivedAt = now
    }

    /// Payload bytes we sent to the peer (what seeding ranks by, and its turn's quota).
    public mutating func sentPayload(to peer: PeerSlot, bytes: Int, at now: Instant) {
        precondition(isConnected(peer), "\(peer) is not connected")
        peers[peer.index].uploadRate.record(bytes: bytes, at: now)
        peers[peer.index].bytesSentSinceUnchoke += bytes
    }

    /// Switches between leeching and seeding ranking; rechokes at once since the ranking changed.
    public mutating func setSeeding(_ seeding: Bool, at now: Instant, into actions: inout [ChokeAction]) {
        guard seeding != isSeeding else { return }
        isSeeding = seeding
        rechoke(at: now, rotatingOptimistic: false, into: &actions)
    }

    /// Call regularly (every second is plenty): rechokes every `rechokeInterval` and rotates the
    /// optimistic slot every `optimisticUnchokeInterval`.
    public mutating func tick(at now: Instant, into actions: inout [ChokeAction]) {
        guard let nextRechokeAt, let nextOptimisticAt else {
            self.nextRechokeAt = now.advanced(by: configuration.rechokeInterval)
            self.nextOptimisticAt = now.advanced(by: configuration.optimisticUnchokeInterval)
            return
        }
        guard now >= nextRechokeAt || now >= nextOptimisticAt else { return }
        let rotating = now >= nextOptimisticAt
        if rotating { self.nextOptimisticAt = now.advanced(by: configuration.optimisticUnchokeInterval) }
        self.nextRechokeAt = now.advanced(by: configuration.rechokeInterval)
        rechoke(at: now, rotatingOptimistic: rotating, into: &actions)
    }

    // MARK: - Decisions

    private func isOptimistic(_ index: Int) -> Bool { optimisticPeer?.index == index }

    /// Interested peers, best first, for the regular slots.
    private func ranking(at now: Instant) -> [Int] {
        let candidates = peers.indices.filter { peers[$0].isConnected && peers[$0].isInterested }
        return isSeeding ? seedingRanking(candidates, at: now) : leechingRanking(candidates, at: now)
    }

    private func leechingRanking(_ candidates: [Int], at now: Instant) -> [Int] {
        let snubNanoseconds = configuration.snubTimeout.nanosecondCount
        var reciprocators: [(index: Int, rate: Double)] = []
        var others: [Int] = []
        for index in candidates {
            let rate = peers[index].downloadRate.rateBytesPerSecond(at: now)
            if let last = peers[index].lastPayloadReceivedAt, now.nanoseconds(since: last) < snubNanoseconds,
                rate > 0
            {
                reciprocators.append((index, rate))
            } else {
                others.append(index)
            }
        }
        reciprocators.sort { $0.rate != $1.rate ? $0.rate > $1.rate : $0.index < $1.index }
        // Spare slots go to peers that waited longest, so each gets a chance to start reciprocating.
        others.sort { waitingKey($0) < waitingKey($1) }
        return reciprocators.map(\.index) + others
    }

    private func seedingRanking(_ candidates: [Int], at now: Instant) -> [Int] {
        var serving: [(index: Int, rate: Double)] = []
        var waiting: [Int] = []
        var exhausted: [(index: Int, rate: Double)] = []
        let turnNanoseconds = configuration.seedingSlotDuration.nanosecondCount
        for index in candidates {
            let peer = peers[index]
            let rate = peer.uploadRate.rateBytesPerSecond(at: now)
            if !peer.isUnchoked || isOptimistic(index) {
                waiting.append(index)
            } else if now.nanoseconds(since: peer.lastChangeAt) >= turnNanoseconds
                || peer.bytesSentSinceUnchoke >= configuration.seedingSlotBytes
            {
                exhausted.append((index, rate))
            } else {
                serving.append((index, rate))
            }
        }
        let byRate: ((index: Int, rate: Double), (index: Int, rate: Double)) -> Bool = {
            $0.rate != $1.rate ? $0.rate > $1.rate : $0.index < $1.index
        }
        serving.sort(by: byRate)
        exhausted.sort(by: byRate)
        waiting.sort { waitingKey($0) < waitingKey($1) }
        return serving.map(\.index) + waiting + exhausted.map(\.index)
    }

    /// Choked peers first, longest-choked first; then unchoked ones, most recently unchoked first.
    private func waitingKey(_ index: Int) -> (Int, UInt64, Int) {
        let peer = peers[index]
        return peer.isUnchoked
            ? (1, UInt64.max - peer.lastChangeAt.nanoseconds, index)
            : (0, peer.lastChangeAt.nanoseconds, index)
    }

    private mutating func rechoke(
        at now: Instant, rotatingOptimistic: Bool, into actions: inout [ChokeAction]
    ) {
        if rotatingOptimistic { optimisticPeer = nil }
        var regular = Set<Int>()
        for index in ranking(at: now) where regular.count < configuration.regularUnchokeSlots {
            // An optimistic peer keeps its own slot until rotation, unless it earned a regular one.
            regular.insert(index)
        }
        if let optimistic = optimisticPeer, regular.contains(optimistic.index) { optimisticPeer = nil }
        if let optimistic = optimisticPeer, !peers[optimistic.index].isInterested { optimisticPeer = nil }
        if optimisticPeer == nil { optimisticPeer = drawOptimistic(excluding: regular, at: now) }
        for index in peers.indices where peers[index].isConnected {
            let keep = regular.contains(index) || isOptimistic(index)
            if keep && !peers[index].isUnchoked {
                unchoke(index, at: now, into: &actions)
            } else if !keep && peers[index].isUnchoked {
                choke(index, at: now, into: &actions)
            }
        }
    }

    /// Gives free regular slots, then a free optimistic slot, to waiting interested peers.
    private mutating func fillFreeSlots(at now: Instant, into actions: inout [ChokeAction]) {
        var free = configuration.regularUnchokeSlots - regularUnchokedCount
        if free > 0 {
            for index in ranking(at: now) where free > 0 && !peers[index].isUnchoked {
                unchoke(index, at: now, into: &actions)
                free -= 1
            }
        }
        if optimisticPeer == nil {
            let unchoked = Set(peers.indices.filter { peers[$0].isConnected && peers[$0].isUnchoked })
            if let drawn = drawOptimistic(excluding: unchoked, at: now) {
                optimisticPeer = drawn
                unchoke(drawn.index, at: now, into: &actions)
            }
        }
    }

    /// A weighted random interested peer outside `excluding`; new peers weigh more.
    private mutating func drawOptimistic(excluding: Set<Int>, at now: Instant) -> PeerSlot? {
        let newNanoseconds = configuration.newPeerDuration.nanosecondCount
        var choices: [(index: Int, weight: Int)] = []
        var totalWeight = 0
        for index in peers.indices
        where peers[index].isConnected && peers[index].isInterested && !excluding.contains(index) {
            let isNew = now.nanoseconds(since: peers[index].connectedAt) < newNanoseconds
            let weight = isNew ? configuration.newPeerOptimisticWeight : 1
            choices.append((index, weight))
            totalWeight += weight
        }
        guard totalWeight > 0 else { return nil }
        var draw = random.below(totalWeight)
        for choice in choices {
            if draw < choice.weight { return PeerSlot(UInt32(choice.index)) }
            draw -= choice.weight
        }
        preconditionFailure("weighted draw fell outside its total")
    }

    private mutating func unchoke(_ index: Int, at now: Instant, into actions: inout [ChokeAction]) {
        peers[index].isUnchoked = true
        peers[index].lastChangeAt = now
        peers[index].bytesSentSinceUnchoke = 0
        actions.append(.unchoke(PeerSlot(UInt32(index))))
    }

    private mutating func choke(_ index: Int, at now: Instant, into actions: inout [ChokeAction]) {
        peers[index].isUnchoked = false
        peers[index].lastChangeAt = now
        if optimisticPeer?.index == index { optimisticPeer = nil }
        actions.append(.choke(PeerSlot(UInt32(index))))
    }
}

/// One peer as the choker sees it.
///
/// Invariants: `isUnchoked` implies `isConnected`; `bytesSentSinceUnchoke` counts from `lastChangeAt`
/// when unchoked.
struct ChokerPeer: Sendable {
    var isConnected = false
    var isInterested = false
    var isUnchoked = false
    var connectedAt = Instant.zero
    /// When the peer was last choked or unchoked: how long it has waited, or held its slot.
    var lastChangeAt = Instant.zero
    var lastPayloadReceivedAt: Instant?
    var downloadRate = RateMeter()
    var uploadRate = RateMeter()
    var bytesSentSinceUnchoke = 0

    init() {}

    init(connectedAt: Instant, rateWindow: Duration) {
        isConnected = true
        self.connectedAt = connectedAt
        lastChangeAt = connectedAt
        downloadRate = RateMeter(window: rateWindow)
        uploadRate = RateMeter(window: rateWindow)
    }
}
