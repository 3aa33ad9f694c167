import TorrentModel

/// A message the engine should send to a peer on behalf of the request pipeline.
public enum RequestAction: Hashable, Sendable {
    /// Send a REQUEST for this block.
    case request(PeerSlot, BlockRange)
    /// Send a CANCEL: another peer delivered this block first (endgame), or the peer was snubbed.
    case cancel(PeerSlot, BlockRange)
    /// Send INTERESTED: the peer has a piece we want.
    case interested(PeerSlot)
    /// Send NOT INTERESTED: the peer has nothing more that we want.
    case notInterested(PeerSlot)
}

/// What a hash failure means for the peers that sent the piece.
public struct HashFailureReport: Hashable, Sendable {
    /// Every peer that sent a block of the failed piece, in slot order.
    public var contributors: [PeerSlot]
    /// The contributors that crossed the ban threshold with this failure, or that alone sent the whole
    /// piece before anything they sent passed: disconnect them and refuse their address. Each is
    /// reported once.
    public var peersToBan: [PeerSlot]
    /// Whether the failure is more likely ours than the peers' (our hash check, our memory), so nobody
    /// was charged for it: the piece failed `presumeLocalFaultAfterPieceFailures` times without passing
    /// and every sender of this attempt sent good data of other pieces, or the caller said so.
    public var isLikelyLocalFault: Bool
}

/// Keeps each peer's request queue full: which blocks are outstanding from whom, how deep each queue
/// should be (the peer's bandwidth-delay product), snubbing, choke and departure handling, endgame
/// cancels, and charging peers for hash failures. Blocks are chosen by the `PiecePicker` it owns.
///
/// The engine reports events (with `now`), and sends the `RequestAction`s appended to the buffer it
/// passes in; reusing that buffer keeps the per-block path free of allocation.
///
/// Measured in a release build on the shared 2-core development machine (4,000 pieces of 1 MiB,
/// 200 peers answering every request, through endgame): about 0.25 µs per received block, picking and
/// interest updates included, whether peers have two thirds of the pieces or 5 % of them.
///
/// ## Invariants
/// - A block is in peer P's `outstanding` iff P is one of the block's requesters in the picker.
/// - A peer that is not connected, is choking us or is banned has no outstanding requests.
/// - `waitingSince` is set iff the peer has outstanding requests; it is the last time it made progress
///   (a block arrived) or the time its queue went from empty to non-empty.
/// - Seeds are counted in the picker with `addSeed` (not per piece) and `isSeed` says so.
/// - `amInterested` is whether the peer has a piece in the picker's `wanted` set; every change of it was
///   announced with an action.
public struct RequestPipeline: Sendable {
    /// Tuning; the defaults follow what the fast engines do (about 3 s of data in flight, 4 to 500).
    public struct Configuration: Hashable, Sendable {
        /// How much of a peer's measured rate to keep requested: enough to cover its latency and jitter.
        public var dataInFlightDuration: Duration = .seconds(3)
        /// The queue of a peer whose rate is not known yet or is low: enough to discover its rate.
        public var minimumQueueLength = 4
        /// The deepest queue for any peer (libtorrent's cap: 500 blocks of 16 KiB is 8 MiB in flight).
        public var maximumQueueLength = 500
        /// The queue of a snubbed peer: one request lets it show it is alive without holding blocks.
        public var snubbedQueueLength = 1
        /// A peer with requests outstanding that sends nothing for this long is snubbed.
        public var snubTimeout: Duration = .seconds(15)
        /// The request queue assumed for a peer that did not advertise `reqq` (BEP 10); 250 is
        /// libtorrent's default, which most peers accept.
        public var assumedPeerRequestQueueLength = 250
        /// The window over which a peer's download rate is averaged.
        public var rateWindow: Duration = .seconds(4)
        /// How many failed pieces a peer must have contributed to before it can be banned.
        public var banAfterHashFailures = 3
        /// The share of a peer's blocks that landed in failed pieces at which it is banned. Counting
        /// blocks, not pieces, spares an honest peer that sent one block to each of a liar's pieces.
        public var banSuspectBlockFraction = 0.25
        /// How many blocks proven corrupt by their digests get a peer banned. One: honest peers do not
        /// send corrupt data, TCP checksums make transmission errors rare, and every bad block costs a piece.
        public var banAfterProvenCorruptBlocks = 1
        /// Endgame duplicates: the most peers asked for one block at once.
        public var maximumRequestersPerBlock = 3
        /// How many times one piece may fail, with no attempt passing, before its failures are presumed
        /// ours and charged to nobody, provided every sender of the last attempt sent good blocks of other
        /// pieces. Two: honest peers agreeing on bytes we reject points at our check, not at them; a peer
        /// that never sent a good block gets no such benefit of the doubt.
        public var presumeLocalFaultAfterPieceFailures = 2
        /// How many pieces' worth of blocks a peer may have requested before any block it sent was part
        /// of a verified piece. Trust is earned: a liar gets this many pieces before its first lie is
        /// found, not a whole pipeline of them (which was six pieces with two honest seeders). Never fewer
        /// blocks than `minimumQueueLength`; 0 turns probation off.
        public var probationPieces = 2
        /// How many pieces a peer out of probation may have sent part of that await their hash check before
        /// it gets no more requests. A peer that turns liar after earning trust then spoils at most these,
        /// plus the pieces it had started, before its first failure puts it under suspicion. A check takes
        /// milliseconds while a queue holds seconds of requests, so an honest peer does not notice it.
        /// 0 turns the cap off.
        public var maximumPiecesAwaitingHash = 4
        /// The cap's floor in bytes: small pieces are checked one by one, each check a round trip to the
        /// hashing workers (and back through the reactor's batching of completions), so four 16 KiB pieces
        /// held a libtorrent seeder to 16 MB/s. A liar turned late spoils at most this much data instead.
        public var minimumBytesAwaitingHash = 4 << 20
        /// How long a peer under suspicion (it sent part of a piece that failed, and that piece has not
        /// passed since) gets no requests. Usually another peer delivers the piece first and digests then
        /// convict or clear it; when nobody else has the piece, it is asked again after this.
        public var suspicionTimeout: Duration = .seconds(15)

        /// The defaults.
        public init() {}
    }

    /// The tuning this pipeline was made with.
    public let configuration: Configuration
    /// The block chooser. Mutate it through the pipeline so the per-peer queues stay consistent.
    public private(set) var picker: PiecePicker

    private var peers: [PeerState] = []
    /// Failed attempts of each piece that has not passed since; at most one entry per piece.
    private var failuresByPiece: [PieceIndex: Int] = [:]
    /// The senders of each piece awaiting its hash: their `piecesAwaitingHash` counts it.
    private var awaitingHashSenders: [PieceIndex: [PeerSlot]] = [:]
    private var scratchBlocks: [BlockRange] = []
    private var scratchPeers: [PeerSlot] = []

    /// A pipeline for a torrent of `geometry` with `have` already verified; `seed` drives the picker's
    /// tie-breaks so a run replays. Pieces in `dataBlockCounts` are asked for only up to their padding
    /// (see ``PiecePicker/init(geometry:have:seed:maximumRequestersPerBlock:dataBlockCounts:)``).
    public init(
        geometry: PieceGeometry, have: PieceSet? = nil, seed: UInt64, configuration: Configuration = .init(),
        dataBlockCounts: [PieceIndex: Int] = [:]
    ) {
        precondition(configuration.minimumQueueLength >= 1, "a peer needs at least one request")
        precondition(configuration.maximumQueueLength >= configuration.minimumQueueLength)
        precondition(configuration.snubbedQueueLength >= 1)
        self.configuration = configuration
        picker = PiecePicker(
            geometry: geometry, have: have, seed: seed,
            maximumRequestersPerBlock: configuration.maximumRequestersPerBlock,
            dataBlockCounts: dataBlockCounts)
    }

    // MARK: - Queries

    /// Whether `peer` is connected (between `peerConnected` and `peerDisconnected`).
    public func isConnected(_ peer: PeerSlot) -> Bool {
        peer.index < peers.count && peers[peer.index].isConnected
    }

    /// The blocks requested from `peer` and not yet received, oldest first.
    public func outstandingRequests(of peer: PeerSlot) -> [BlockRange] {
        isConnected(peer) ? Array(peers[peer.index].outstanding.blocks) : []
    }

    /// Whether `peer` sent nothing for `snubTimeout` while we waited on it, and has not sent since.
    public func isSnubbed(_ peer: PeerSlot) -> Bool { isConnected(peer) && peers[peer.index].isSnubbed }

    /// Whether `peer` was banned for corrupt data (the engine should have disconnected it).
    public func isBanned(_ peer: PeerSlot) -> Bool { isConnected(peer) && peers[peer.index].isBanned }

    /// Whether `peer` sent part of a failed piece that has not passed since (it gets no requests while
    /// a peer under no suspicion can serve).
    public func isSuspect(_ peer: PeerSlot) -> Bool {
        isConnected(peer) && !peers[peer.index].suspectPieces.isEmpty
    }

    /// Whether `pieceHashPassed` for `piece` wants block digests: the piece failed before with them.
    public func needsBlockDigests(toPass piece: PieceIndex) -> Bool { picker.hasFailedAttempts(piece) }

    /// How many failed pieces `peer` contributed to since it connected.
    public func hashFailures(of peer: PeerSlot) -> Int {
        isConnected(peer) ? peers[peer.index].hashFailures : 0
    }

    /// The measured rate of payload from `peer`.
    public func downloadRateBytesPerSecond(of peer: PeerSlot, at now: Instant) -> Double {
        isConnected(peer) ? peers[peer.index].rate.rateBytesPerSecond(at: now) : 0
    }

    /// Whether we are interested in `peer`: it has a piece we want. Changes are announced with
    /// `.interested` and `.notInterested` actions.
    public func isInterested(in peer: PeerSlot) -> Bool {
        isConnected(peer) && peers[peer.index].amInterested
    }

    /// How many requests `peer` should have outstanding now: its rate times `dataInFlightDuration` in
    /// blocks, within `minimumQueueLength...maximumQueueLength`, never above its advertised `reqq`; a
    /// snubbed peer gets `snubbedQueueLength`.
    public func targetQueueLength(for peer: PeerSlot, at now: Instant) -> Int {
        guard isConnected(peer) else { return 0 }
        let limit = peers[peer.index].requestQueueLimit
        if peers[peer.index].isSnubbed { return min(configuration.snubbedQueueLength, limit) }
        let seconds = Double(configuration.dataInFlightDuration.nanosecondCount) / 1e9
        let rate = peers[peer.index].rate.rateBytesPerSecond(at: now)
        let inFlightBlocks = rate * seconds / Double(picker.geometry.blockLength)
        let clamped = min(
            Double(configuration.maximumQueueLength),
            max(Double(configuration.minimumQueueLength), inFlightBlocks))
        return min(Int(clamped), limit)
    }

    // MARK: - Settings (forwarded to the picker)

    /// Sets a piece's priority (0 skips it; see `PiecePicker.setPriority`), and updates our interest in
    /// the peers that have it. O(peers), plus O(pieces / 64) for each peer that may lose our interest;
    /// O(1) when the piece already has that priority.
    public mutating func setPriority(
        _ priority: PiecePriority, of piece: PieceIndex, into actions: inout [RequestAction]
    ) {
        guard picker.priority(of: piece) != priority else { return }
        picker.setPriority(priority, of: piece)
        for index in peers.indices where peers[index].isConnected && peers[index].has.contains(piece) {
            updateInterest(PeerSlot(UInt32(index)), into: &actions)
        }
    }

    /// Switches strict sequential order on or off.
    public mutating func setSequential(_ sequential: Bool) { picker.setSequential(sequential) }

    // MARK: - Peer events

    /// A peer finished its handshake. It starts choking us with no pieces.
    public mutating func peerConnected(_ peer: PeerSlot) {
        while peers.count <= peer.index { peers.append(PeerState()) }
        precondition(!peers[peer.index].isConnected, "\(peer) is already connected")
        peers[peer.index].connect(
            pieceCount: picker.pieceCount, requestQueueLimit: configuration.assumedPeerRequestQueueLength,
            rateWindow: configuration.rateWindow)
    }

    /// The peer is gone: its requests are open again (no cancels: there is no one to send them to), its
    /// pieces no longer count towards availability, and the blocks it sent are no longer attributed to
    /// its slot (which the engine may reuse). A peer none of whose pieces ever passed takes its blocks
    /// of unfinished pieces along, to be fetched again: a liar leaving before the check would
    /// otherwise have the piece fail on its co-senders, and come back with a clean slate.
    public mutating func peerDisconnected(_ peer: PeerSlot) {
        precondition(isConnected(peer), "\(peer) is not connected")
        releaseSilently(peer)
        if peers[peer.index].goodBlocks == 0 && configuration.probationPieces > 0 {
            picker.discardBlocks(from: peer)
        }
        picker.forgetSender(peer)
        for piece in Array(awaitingHashSenders.keys) { awaitingHashSenders[piece]!.removeAll { $0 == peer } }
        forgetPieces(peer)
        peers[peer.index].isConnected = false
    }

    /// The peer's BITFIELD. Returns false (and changes nothing) if it is for another piece count.
    @discardableResult
    public mutating func peerBitfield(
        _ peer: PeerSlot, _ pieces: PieceSet, into actions: inout [RequestAction]
    ) -> Bool {
        precondition(isConnected(peer), "\(peer) is not connected")
        guard pieces.pieceCount == picker.pieceCount else { return false }
        forgetPieces(peer)
        peers[peer.index].has = pieces
        if pieces.isComplete && pieces.pieceCount > 0 {
            peers[peer.index].isSeed = true
            picker.addSeed()
        } else {
            picker.addAvailability(pieces)
        }
        updateInterest(peer, into: &actions)
        return true
    }

    /// BEP 6 HAVE ALL: the peer is a seed.
    public mutating func peerHaveAll(_ peer: PeerSlot, into actions: inout [RequestAction]) {
        peerBitfield(peer, PieceSet(pieceCount: picker.pieceCount, full: true), into: &actions)
    }

    /// BEP 6 HAVE NONE.
    public mutating func peerHaveNone(_ peer: PeerSlot, into actions: inout [RequestAction]) {
        peerBitfield(peer, PieceSet(pieceCount: picker.pieceCount), into: &actions)
    }

    /// The peer's HAVE for a piece. Repeats are ignored; returns false for a piece out of range (a
    /// protocol violation the caller may disconnect for).
    @discardableResult
    public mutating func peerHave(
        _ peer: PeerSlot, _ piece: PieceIndex, into actions: inout [RequestAction]
    ) -> Bool {
        precondition(isConnected(peer), "\(peer) is not connected")
        guard piece.int < picker.pieceCount else { return false }
        guard !peers[peer.index].isSeed, peers[peer.index].has.insert(piece) else { return true }
        picker.incrementAvailability(piece)
        // One new piece can only add interest, and checking it is O(1).
        if !peers[peer.index].amInterested && picker.wanted.contains(piece) {
            peers[peer.index].amInterested = true
            actions.append(.interested(peer))
        }
        if peers[peer.index].has.isComplete {
            // Count a peer that completed as a seed, so it costs O(1) from now on.
            picker.removeAvailability(peers[peer.index].has)
            picker.addSeed()
            peers[peer.index].isSeed = true
        }
        return true
    }

    /// The peer serves long byte ranges best (a web seed, BEP 19): its blocks are picked in payload
    /// order from the largest gaps (``PiecePicker/pickRun(for:peerHas:maximumCount:after:into:)``), and
    /// its queue is topped up only once half empty, so that each top-up is one long run.
    public mutating func peerServesRanges(_ peer: PeerSlot) {
        precondition(isConnected(peer), "\(peer) is not connected")
        peers[peer.index].servesRanges = true
    }

    /// The peer's advertised request queue length (`reqq` from BEP 10); out-of-range values are clamped.
    public mutating func peerAdvertisedRequestQueue(_ peer: PeerSlot, length: Int) {
        precondition(isConnected(peer), "\(peer) is not connected")
        peers[peer.index].requestQueueLimit = min(max(length, 1), configuration.maximumQueueLength)
    }

    /// The peer choked us: it discards our requests (BEP 3), so they are open again for others.
    public mutating func peerChokedUs(_ peer: PeerSlot) {
        precondition(isConnected(peer), "\(peer) is not connected")
        peers[peer.index].isChokingUs = true
        releaseSilently(peer)
    }

    /// The peer unchoked us: fill its queue at once, without waiting for a tick.
    public mutating func peerUnchokedUs(
        _ peer: PeerSlot, at now: Instant, into actions: inout [RequestAction]
    ) {
        precondition(isConnected(peer), "\(peer) is not connected")
        peers[peer.index].isChokingUs = false
        // A peer with nothing we want costs no pick (each walks every missing piece): a flood of
        // unchokes from it is then nearly free.
        guard peers[peer.index].amInterested else { return }
        fillRequests(for: peer, at: now, into: &actions)
    }

    // MARK: - Data events

    /// A PIECE message's block arrived from `peer`. Appends cancels for the other peers that had it
    /// requested and new requests to keep `peer`'s queue full. Write the data only if the receipt says
    /// `.accepted`; on `.accepted(pieceComplete: true)`, hash the piece.
    public mutating func blockReceived(
        _ block: BlockRange, from peer: PeerSlot, at now: Instant, into actions: inout [RequestAction]
    ) -> BlockReceipt {
        precondition(isConnected(peer), "\(peer) is not connected")
        // A proven liar's data is not written, even while the engine is still closing its connection, nor
        // a suspect's late answers to the requests its suspicion cancelled.
        guard !peers[peer.index].isBanned else { return .unexpected }
        let wasRequested = peers[peer.index].removeOutstanding(block)
        guard wasRequested || peers[peer.index].suspectPieces.isEmpty else { return .unexpected }
        scratchPeers.removeAll(keepingCapacity: true)
        let receipt = picker.blockReceived(block, from: peer, cancelTo: &scratchPeers)
        if receipt == .accepted(pieceComplete: true) {
            let senders = picker.contributions(to: block.piece).map(\.peer)
            awaitingHashSenders[block.piece] = senders
            for sender in senders where isConnected(sender) { peers[sender.index].piecesAwaitingHash += 1 }
        }
        // Only data we asked for or could use is progress: unsolicited junk or duplicates must not inflate
        // the peer's rate (and so its queue) or lift a snub.
        var isAccepted = false
        if case .accepted = receipt { isAccepted = true }
        if wasRequested || isAccepted {
            peers[peer.index].rate.record(bytes: Int(block.length), at: now)
            peers[peer.index].isSnubbed = false
            peers[peer.index].waitingSince = peers[peer.index].outstanding.isEmpty ? nil : now
        }
        for other in scratchPeers where isConnected(other) {
            if peers[other.index].removeOutstanding(block) {
                actions.append(.cancel(other, block))
                if peers[other.index].outstanding.isEmpty { peers[other.index].waitingSince = nil }
            }
        }
        fillRequests(for: peer, at: now, into: &actions)
        return receipt
    }

    /// A request came back without data we could keep: the peer rejected it (BEP 6), the engine had no
    /// buffer to put the block in, or the connection could not send the request. The block is open again
    /// at once, for this peer or another, instead of waiting for a snub timeout. With `refill`, the
    /// peer's queue is topped up now; without, at its next block or tick.
    public mutating func requestReturned(
        _ block: BlockRange, from peer: PeerSlot, at now: Instant, refill: Bool = true,
        into actions: inout [RequestAction]
    ) {
        guard isConnected(peer), peers[peer.index].removeOutstanding(block) else { return }
        picker.releaseRequest(block, from: peer)
        if peers[peer.index].outstanding.isEmpty { peers[peer.index].waitingSince = nil }
        if refill { fillRequests(for: peer, at: now, into: &actions) }
    }

    /// The piece hashed correctly; the blocks each peer sent of it count in its favour. If it failed
    /// before with block digests (give `blockDigests` of this good data when `needsBlockDigests(toPass:)`),
    /// the peers whose earlier blocks differ from it are proven corrupt; those reaching
    /// `banAfterProvenCorruptBlocks` are banned and returned (disconnect them). The others under suspicion
    /// for this piece are cleared.
    @discardableResult
    public mutating func pieceHashPassed(
        _ piece: PieceIndex, blockDigests: [UInt64]? = nil, at now: Instant,
        into actions: inout [RequestAction]
    ) -> [PeerSlot] {
        let verdict = picker.pieceHashPassed(piece, blockDigests: blockDigests)
        failuresByPiece[piece] = nil
        let releasedFromCap = hashResolved(piece)
        var leftProbation: [PeerSlot] = []
        for contribution in verdict.contributions where isConnected(contribution.peer) {
            if peers[contribution.peer.index].goodBlocks == 0 { leftProbation.append(contribution.peer) }
            peers[contribution.peer.index].goodBlocks += contribution.blockCount
        }
        // Only peers that have this piece can have lost our interest with it.
        for index in peers.indices
        where peers[index].isConnected && peers[index].amInterested && peers[index].has.contains(piece) {
            updateInterest(PeerSlot(UInt32(index)), into: &actions)
        }
        var banned: [PeerSlot] = []
        for culprit in verdict.provenCorrupt
        where isConnected(culprit.peer) && !peers[culprit.peer.index].isBanned {
            peers[culprit.peer.index].corruptBlocks += culprit.blockCount
            if peers[culprit.peer.index].corruptBlocks >= configuration.banAfterProvenCorruptBlocks {
                ban(culprit.peer, into: &actions)
                banned.append(culprit.peer)
            }
        }
        // Peers that waited on this piece (on probation, at the awaiting-hash cap, or under suspicion) may
        // be asked again.
        for peer in leftProbation + releasedFromCap + clearSuspicion(of: piece)
        where !peers[peer.index].isBanned {
            fillRequests(for: peer, at: now, into: &actions)
        }
        return banned
    }

    /// The piece failed its hash: it is requested again from scratch. A peer that sent every block of it
    /// alone, while nothing it sent has passed yet, is banned at once. Otherwise, with block digests for
    /// every block the culprits are named later by `pieceHashPassed`; without, the contributors are
    /// charged on suspicion: one is banned once it took part in `banAfterHashFailures` failed pieces and
    /// at least `banSuspectBlockFraction` of the blocks it sent were in failed pieces. A banned peer gets
    /// no more requests, its outstanding ones are cancelled and its blocks in unfinished pieces are
    /// fetched again. Other peers' queues are refilled.
    ///
    /// Nobody is charged when the failure is likely ours: `isLocalFault` (the caller had no hash to check
    /// the piece against), or the piece failing for the `presumeLocalFaultAfterPieceFailures`-th time.
    ///
    /// Otherwise every sender is under suspicion until the piece passes: it gets no requests (those
    /// outstanding are cancelled), and its blocks in other unfinished pieces are discarded and fetched
    /// again, so a liar spoils no more pieces while the piece is fetched from others. `blockDigests` (one
    /// cheap checksum per block of the failed data) let the pass name who lied.
    public mutating func pieceHashFailed(
        _ piece: PieceIndex, blockDigests: [UInt64]? = nil, at now: Instant, isLocalFault: Bool = false,
        into actions: inout [RequestAction]
    ) -> HashFailureReport {
        let verdict = picker.pieceHashFailed(piece, blockDigests: blockDigests)
        hashResolved(piece)
        failuresByPiece[piece, default: 0] += 1
        // Honest peers agreeing on bytes we reject points at us; a peer that never sent a good block
        // failing the same piece again points at the peer.
        let isLikelyLocalFault =
            isLocalFault
            || (failuresByPiece[piece, default: 0] >= configuration.presumeLocalFaultAfterPieceFailures
                && verdict.contributions.allSatisfy { contribution in
                    isConnected(contribution.peer) && peers[contribution.peer.index].goodBlocks > 0
                })
        let banned = isLikelyLocalFault ? [] : charge(verdict, of: piece, into: &actions)
        if isLikelyLocalFault {
            clearSuspicion(of: piece)
        } else if verdict.culpritsWillBeIdentified {
            // Without digests nothing would ever clear the suspicion: the charges above stand instead.
            for contribution in verdict.contributions
            where isConnected(contribution.peer) && !peers[contribution.peer.index].isBanned {
                suspect(contribution.peer, of: piece, at: now, into: &actions)
            }
        }
        fillAll(at: now, into: &actions)
        return HashFailureReport(
            contributors: verdict.contributions.map(\.peer), peersToBan: banned,
            isLikelyLocalFault: isLikelyLocalFault)
    }

    /// Charges the senders of a failed piece on suspicion and bans those past the thresholds.
    private mutating func charge(
        _ verdict: PieceVerdict, of piece: PieceIndex, into actions: inout [RequestAction]
    ) -> [PeerSlot] {
        var banned: [PeerSlot] = []
        let blockCount = picker.dataBlockCounts[piece] ?? picker.geometry.blockCount(of: piece)
        for contribution in verdict.contributions where isConnected(contribution.peer) {
            let peer = contribution.peer
            guard !peers[peer.index].isBanned else { continue }
            peers[peer.index].hashFailures += 1
            // Nobody shares the blame and nothing speaks for it: digests could only confirm what is known,
            // while waiting for them lets it spoil more. A peer with verified data keeps the benefit of the
            // doubt, so a piece our check wrongly rejects does not cost us its only source.
            if contribution.blockCount == blockCount && peers[peer.index].goodBlocks == 0 {
                ban(peer, into: &actions)
                banned.append(peer)
                continue
            }
            guard !verdict.culpritsWillBeIdentified else { continue }
            peers[peer.index].suspectBlocks += contribution.blockCount
            let state = peers[peer.index]
            let suspectFraction = Double(state.suspectBlocks) / Double(state.suspectBlocks + state.goodBlocks)
            if state.hashFailures >= configuration.banAfterHashFailures
                && suspectFraction >= configuration.banSuspectBlockFraction
            {
                ban(peer, into: &actions)
                banned.append(peer)
            }
        }
        return banned
    }

    /// Periodic housekeeping (about once a second): snubs peers that sent nothing for `snubTimeout`
    /// while we waited on them (their requests are cancelled and reopened), lifts suspicions older than
    /// `suspicionTimeout`, then tops up every queue.
    public mutating func tick(at now: Instant, into actions: inout [RequestAction]) {
        let timeout = configuration.snubTimeout.nanosecondCount
        for index in peers.indices where peers[index].isConnected {
            if let since = peers[index].suspectSince,
                now.nanoseconds(since: since) >= configuration.suspicionTimeout.nanosecondCount
            {
                peers[index].suspectPieces.removeAll()
                peers[index].suspectSince = nil
            }
            guard let waitingSince = peers[index].waitingSince,
                now.nanoseconds(since: waitingSince) >= timeout
            else { continue }
            peers[index].isSnubbed = true
            releaseAll(PeerSlot(UInt32(index)), sendingCancels: true, into: &actions)
        }
        fillAll(at: now, into: &actions)
    }

    /// Caps the pieces in progress at `limit` (see ``PiecePicker/maximumPiecesInProgress``): the caller's
    /// free piece buffers. When a raise makes room for a piece a pick was refused, every queue is topped
    /// up, so peers left idle by the cap get work as soon as memory is free.
    public mutating func limitPiecesInProgress(
        to limit: Int, at now: Instant, into actions: inout [RequestAction]
    ) {
        if picker.setMaximumPiecesInProgress(max(0, limit)) { fillAll(at: now, into: &actions) }
    }

    /// Requests blocks from `peer` until its queue reaches `targetQueueLength`, if it is unchoking us.
    public mutating func fillRequests(
        for peer: PeerSlot, at now: Instant, into actions: inout [RequestAction]
    ) {
        guard isConnected(peer), !peers[peer.index].isChokingUs, !peers[peer.index].isBanned else { return }
        // A suspect that never sent a good block waits out its suspicion. One that did waits while a peer
        // we have no doubt about can serve instead; with none it is asked as before (sitting out would
        // stall the download, and digests still convict a liar later).
        if !peers[peer.index].suspectPieces.isEmpty
            && (peers[peer.index].goodBlocks == 0 || hasTrustedAlternative(to: peer))
        {
            return
        }
        var target = targetQueueLength(for: peer, at: now)
        if peers[peer.index].goodBlocks == 0 && configuration.probationPieces > 0 {
            // On probation: a few pieces at a time, and none more while one of them is being checked.
            guard peers[peer.index].piecesAwaitingHash == 0 else { return }
            let probationBlocks =
                configuration.probationPieces * picker.geometry.blockCount(of: PieceIndex(0))
            target = min(target, max(configuration.minimumQueueLength, probationBlocks))
        } else if configuration.maximumPiecesAwaitingHash > 0
            && peers[peer.index].piecesAwaitingHash >= piecesAwaitingHashLimit
        {
            return
        }
        let deficit = target - peers[peer.index].outstanding.count
        guard deficit > 0 else { return }
        scratchBlocks.removeAll(keepingCapacity: true)
        if peers[peer.index].servesRanges {
            guard deficit * 2 >= target else { return }
            picker.pickRun(
                for: peer, peerHas: peers[peer.index].has, maximumCount: deficit,
                after: peers[peer.index].lastPicked, into: &scratchBlocks)
            peers[peer.index].lastPicked = scratchBlocks.last ?? peers[peer.index].lastPicked
        } else {
            picker.pickBlocks(
                for: peer, peerHas: peers[peer.index].has, maximumCount: deficit, into: &scratchBlocks)
        }
        guard !scratchBlocks.isEmpty else { return }
        if peers[peer.index].outstanding.isEmpty { peers[peer.index].waitingSince = now }
        for block in scratchBlocks {
            peers[peer.index].outstanding.append(block)
            actions.append(.request(peer, block))
        }
    }

    // MARK: - Internals

    /// Announces a change in whether `peer` has something we want; O(pieces / 64).
    private mutating func updateInterest(_ peer: PeerSlot, into actions: inout [RequestAction]) {
        let wanted = picker.wantsAnything(from: peers[peer.index].has)
        guard wanted != peers[peer.index].amInterested else { return }
        peers[peer.index].amInterested = wanted
        actions.append(wanted ? .interested(peer) : .notInterested(peer))
    }

    /// Whether a connected peer other than `peer`, under no suspicion, is unchoking us.
    private func hasTrustedAlternative(to peer: PeerSlot) -> Bool {
        peers.indices.contains { index in
            index != peer.index && peers[index].isConnected && !peers[index].isBanned
                && !peers[index].isChokingUs && peers[index].suspectPieces.isEmpty
        }
    }

    /// How many of a trusted peer's pieces may await their check: `maximumPiecesAwaitingHash`, or more
    /// for small pieces (`minimumBytesAwaitingHash`).
    var piecesAwaitingHashLimit: Int {
        max(
            configuration.maximumPiecesAwaitingHash,
            configuration.minimumBytesAwaitingHash / max(1, picker.geometry.pieceLength))
    }

    /// The piece's hash is known: its senders no longer wait on it. Returns those it held at
    /// `piecesAwaitingHashLimit`, which may be asked again.
    @discardableResult
    private mutating func hashResolved(_ piece: PieceIndex) -> [PeerSlot] {
        var released: [PeerSlot] = []
        for sender in awaitingHashSenders.removeValue(forKey: piece) ?? [] where isConnected(sender) {
            if peers[sender.index].piecesAwaitingHash == piecesAwaitingHashLimit {
                released.append(sender)
            }
            peers[sender.index].piecesAwaitingHash -= 1
        }
        return released
    }

    /// Puts `peer` under suspicion for `piece`: no requests until it is cleared, and its unchecked
    /// blocks in unfinished pieces are fetched again.
    private mutating func suspect(
        _ peer: PeerSlot, of piece: PieceIndex, at now: Instant, into actions: inout [RequestAction]
    ) {
        peers[peer.index].suspectPieces.insert(piece)
        if peers[peer.index].suspectSince == nil { peers[peer.index].suspectSince = now }
        releaseAll(peer, sendingCancels: true, into: &actions)
        picker.discardBlocks(from: peer)
    }

    /// Clears every peer's suspicion for `piece`; returns the peers no longer under any.
    @discardableResult
    private mutating func clearSuspicion(of piece: PieceIndex) -> [PeerSlot] {
        var cleared: [PeerSlot] = []
        for index in peers.indices
        where peers[index].isConnected && peers[index].suspectPieces.remove(piece) != nil {
            if peers[index].suspectPieces.isEmpty {
                peers[index].suspectSince = nil
                cleared.append(PeerSlot(UInt32(index)))
            }
        }
        return cleared
    }

    /// Its unchecked blocks in unfinished pieces go too: kept, they would fail those pieces and have
    /// honest peers charged for them.
    private mutating func ban(_ peer: PeerSlot, into actions: inout [RequestAction]) {
        peers[peer.index].isBanned = true
        releaseAll(peer, sendingCancels: true, into: &actions)
        picker.discardBlocks(from: peer)
    }

    /// Snubbed peers last: the blocks a snub just released go first to peers that deliver. Three
    /// silent peers of low slots took the last block straight back in endgame (three requesters at
    /// most), at every tick, and the download never finished.
    private mutating func fillAll(at now: Instant, into actions: inout [RequestAction]) {
        for snubbed in [false, true] {
            for index in peers.indices where peers[index].isConnected && peers[index].isSnubbed == snubbed {
                fillRequests(for: PeerSlot(UInt32(index)), at: now, into: &actions)
            }
        }
    }

    /// Returns every outstanding request of `peer` to the picker, appending cancels if asked to.
    private mutating func releaseAll(
        _ peer: PeerSlot, sendingCancels: Bool, into actions: inout [RequestAction]
    ) {
        for block in peers[peer.index].outstanding.blocks {
            picker.releaseRequest(block, from: peer)
            if sendingCancels { actions.append(.cancel(peer, block)) }
        }
        peers[peer.index].outstanding.removeAll()
        peers[peer.index].waitingSince = nil
    }

    /// Releases without cancels: the peer already dropped the requests (choke) or is gone.
    private mutating func releaseSilently(_ peer: PeerSlot) {
        var none: [RequestAction] = []
        releaseAll(peer, sendingCancels: false, into: &none)
    }

    private mutating func forgetPieces(_ peer: PeerSlot) {
        if peers[peer.index].isSeed {
            picker.removeSeed()
            peers[peer.index].isSeed = false
        } else {
            picker.removeAvailability(peers[peer.index].has)
        }
    }
}

/// One peer as the request pipeline sees it; slots are reused, so `connect` resets everything.
///
/// Invariants: a seed (`isSeed`) has a full `has` and is counted by the picker's `seedCount`, not in
/// per-piece availability; `requestQueueLimit` is in `1...maximumQueueLength`.
struct PeerState: Sendable {
    var isConnected = false
    var has = PieceSet(pieceCount: 0)
    var isSeed = false
    var isChokingUs = true
    /// Whether we told the peer we are interested.
    var amInterested = false
    var isSnubbed = false
    var isBanned = false
    /// A web seed: picked for in runs (see `RequestPipeline.peerServesRanges`).
    var servesRanges = false
    /// The last block picked for a peer that serves ranges: where its run goes on.
    var lastPicked: BlockRange?
    var requestQueueLimit = 1
    var outstanding = RequestQueue()
    var rate = RateMeter()
    var waitingSince: Instant?
    var hashFailures = 0
    /// Blocks this peer sent that ended up in verified pieces.
    var goodBlocks = 0
    /// Blocks this peer sent that ended up in failed pieces.
    var suspectBlocks = 0
    /// Blocks this peer sent that digests proved corrupt.
    var corruptBlocks = 0
    /// Pieces it sent part of that are being hashed.
    var piecesAwaitingHash = 0
    /// Failed pieces it sent part of that have not passed since; while any, it gets no requests if
    /// another peer can serve.
    var suspectPieces: Set<PieceIndex> = []
    /// When its current suspicion began.
    var suspectSince: Instant?

    mutating func connect(pieceCount: Int, requestQueueLimit: Int, rateWindow: Duration) {
        isConnected = true
        has = PieceSet(pieceCount: pieceCount)
        isSeed = false
        isChokingUs = true
        amInterested = false
        isSnubbed = false
        isBanned = false
        servesRanges = false
        lastPicked = nil
        self.requestQueueLimit = requestQueueLimit
        outstanding.removeAll()
        rate = RateMeter(window: rateWindow)
        waitingSince = nil
        hashFailures = 0
        goodBlocks = 0
        suspectBlocks = 0
        corruptBlocks = 0
        piecesAwaitingHash = 0
        suspectPieces = []
        suspectSince = nil
    }

    mutating func removeOutstanding(_ block: BlockRange) -> Bool { outstanding.remove(block) }
}

/// A peer's outstanding requests, oldest first. Peers answer in request order, so the block that arrives
/// is almost always the oldest: removing it only advances `head`, with no shifting of up to 500 entries.
///
/// Invariants: the live requests are `storage[head...]`; `head <= storage.count`.
struct RequestQueue: Sendable {
    private var storage: [BlockRange] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }
    var blocks: ArraySlice<BlockRange> { storage[head...] }

    mutating func append(_ block: BlockRange) {
        // Reclaim the consumed prefix once it dominates, amortised O(1) per request.
        if head > 32 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
        storage.append(block)
    }

    /// Removes `block`; returns whether it was queued. O(1) for the oldest, O(count) otherwise.
    mutating func remove(_ block: BlockRange) -> Bool {
        guard head < storage.count else { return false }
        if storage[head] == block {
            head += 1
            if head == storage.count { removeAll() }
            return true
        }
        guard let index = storage[head...].firstIndex(of: block) else { return false }
        storage.remove(at: index)
        return true
    }

    mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        head = 0
    }
}
