import Hashing
import TorrentModel

/// Timers and limits of a ``MetadataAssembler``.
public struct MetadataAssemblerOptions: Hashable, Sendable {
    /// How many requests one peer has outstanding at a time.
    public var maximumRequestsPerPeer = 2
    /// How long a peer has to answer a request before the piece is asked of another peer.
    public var requestTimeout: Duration = .seconds(20)
    /// How long a peer that rejected a request, or let one time out, is not asked again.
    public var pauseAfterRefusal: Duration = .seconds(60)

    public init() {}
}

/// BEP 9 downloading side: fetches the info dictionary of a magnet link from the peers that offer it,
/// checks it against the infohash, and finds out which peers sent wrong pieces.
///
/// The caller tells it which peers offer metadata (``addPeer(_:metadataSize:)``, from their extension
/// handshakes) and which leave, sends the requests ``nextRequests(now:)`` returns as `ut_metadata`
/// request messages, and passes every `ut_metadata` message received to ``receive(_:from:now:)``. `Peer`
/// is whatever identifies a connection to the caller.
///
/// How the metadata is fetched:
/// - The first attempt asks every peer that advertises the size most peers agree on, at most
///   `maximumRequestsPerPeer` requests each, those that refused least first; a piece whose request is
///   rejected or times out is asked of another peer, and the peer is paused for `pauseAfterRefusal`.
///   Only the peers that refused least vote on the size, and whenever nothing is pending the vote is
///   taken again: peers that claim a size and never serve it cannot hold back one that answers.
/// - If the assembled metadata fails the hash check and one peer supplied it all, that peer lied. If
///   several did, they become suspects, and from then on each attempt fetches the whole metadata from a
///   single peer (those that refused least first, then those that are not suspects), using that peer's
///   own `metadata_size`: each failed attempt now proves its one peer a liar, so the right metadata is
///   found while one honest peer remains.
/// - The SHA-1 of every piece each peer sent is kept; once the metadata verifies, every peer that sent a
///   piece unlike it is flagged, suspects included. Flagged peers are never asked again.
///
/// Invariants: `attempt.pending` only names pieces not yet stored; each peer in it is known, not flagged
/// and (in a single-source attempt) the source; `infoDictionary`, once set, matches `hashes`.
public struct MetadataAssembler<Peer: Hashable & Sendable>: Sendable {
    /// A request to send: `MetadataMessage.request(piece: piece)` to `peer`.
    public struct Request: Hashable, Sendable {
        public let peer: Peer
        public let piece: Int

        public init(peer: Peer, piece: Int) {
            self.peer = peer
            self.piece = piece
        }
    }

    /// What a received message did.
    public enum Outcome: Hashable, Sendable {
        /// Nothing: a request (for the server), a piece already held, a message about a piece we did not
        /// ask this peer for, or a message from a peer not added or already flagged.
        case ignored
        /// The piece was stored; more are needed.
        case stored(piece: Int)
        /// The peer refused the piece; it is paused and the piece will be asked of another peer.
        case rejected(piece: Int)
        /// The peer sent a `total_size` other than the `metadata_size` it advertised: it is flagged.
        case sentWrongData
        /// Every piece arrived but the whole does not match the infohash. `newlyFlagged` are proven liars
        /// (the sole supplier); otherwise all `suppliers` are suspects. The download starts over.
        case verificationFailed(suppliers: Set<Peer>, newlyFlagged: Set<Peer>)
        /// The metadata is complete and verified. `newlyFlagged` are the peers found to have sent pieces
        /// unlike it.
        case completed(infoDictionary: [UInt8], newlyFlagged: Set<Peer>)
    }

    private struct PeerState: Sendable {
        var metadataSize: Int
        /// When the peer was added, relative to the others: earlier peers are preferred on ties.
        let order: Int
        var pausedUntil: Instant?
        /// Requests it rejected or let time out: among suspects, the most responsive is asked first.
        var refusals = 0
        var isSuspect = false
    }

    private struct PendingRequest: Sendable {
        var peer: Peer
        var sentAt: Instant
    }

    /// A piece as a peer sent it, remembered to judge the peer once the metadata is known.
    private struct Contribution: Sendable {
        var digest: SHA1Digest
        var length: Int
    }

    /// One try at assembling metadata of one size.
    private struct Attempt: Sendable {
        let metadataSize: Int
        /// After a failed check, the one peer every piece is asked of.
        let source: Peer?
        var pieces: [[UInt8]?]
        var suppliers: [Peer?]
        /// The peers each piece was asked of.
        var askedOf: [Set<Peer>]
        var storedCount = 0
        var pending: [Int: PendingRequest] = [:]

        init(metadataSize: Int, source: Peer?) {
            self.metadataSize = metadataSize
            self.source = source
            let count = MetadataMessage.pieceCount(metadataSize: metadataSize)
            pieces = Array(repeating: nil, count: count)
            suppliers = Array(repeating: nil, count: count)
            askedOf = Array(repeating: [], count: count)
        }

        func accepts(from peer: Peer) -> Bool { source == nil || source == peer }
    }

    /// The hashes the metadata must match.
    public let hashes: InfoDictionaryHashes
    public let options: MetadataAssemblerOptions
    /// The verified info dictionary, once complete.
    public private(set) var infoDictionary: [UInt8]?
    /// Every peer found to have sent wrong data. They are never asked again, even if added again.
    public private(set) var peersWithWrongData: Set<Peer> = []

    private var peers: [Peer: PeerState] = [:]
    private var nextOrder = 0
    private var attempt: Attempt?
    /// Set after the first failed check: every later attempt has a single source.
    private var fetchesFromSinglePeer = false
    private var contributions: [Peer: [Int: Contribution]] = [:]

    public init(hashes: InfoDictionaryHashes, options: MetadataAssemblerOptions = MetadataAssemblerOptions())
    {
        self.hashes = hashes
        self.options = options
    }

    /// Whether the metadata is complete and verified.
    public var isComplete: Bool { infoDictionary != nil }

    /// How much of the metadata has arrived, 0 to 1 (1 once verified; a failed check starts over).
    public var fractionReceived: Double {
        if isComplete { return 1 }
        guard let attempt, !attempt.pieces.isEmpty else { return 0 }
        return Double(attempt.storedCount) / Double(attempt.pieces.count)
    }

    /// Adds a peer that offers metadata of `metadataSize` bytes (its handshake's `metadata_size`), or
    /// updates its size. Returns false, and ignores the peer, for a size of zero or above
    /// `MetadataMessage.maximumMetadataSize`.
    @discardableResult
    public mutating func addPeer(_ peer: Peer, metadataSize: Int) -> Bool {
        guard metadataSize > 0, metadataSize <= MetadataMessage.maximumMetadataSize else { return false }
        if peers[peer] != nil {
            peers[peer]?.metadataSize = metadataSize
            dropRequests(of: peer)
        } else {
            peers[peer] = PeerState(metadataSize: metadataSize, order: nextOrder)
            nextOrder += 1
        }
        return true
    }

    /// Forgets a peer (disconnected): its outstanding requests go to other peers.
    public mutating func removePeer(_ peer: Peer) {
        peers[peer] = nil
        contributions[peer] = nil
        dropRequests(of: peer)
    }

    /// The requests to send now. Call it after every change (a peer added, a message received) and on a
    /// timer: it also expires requests older than `requestTimeout`.
    public mutating func nextRequests(now: Instant) -> [Request] {
        guard infoDictionary == nil else { return [] }
        expireRequests(now: now)
        if let current = attempt, !canContinue(current) { attempt = nil }
        if let current = attempt, current.pending.isEmpty,
            current.source == nil || isStalled(current, now: now),
            let other = startAttempt(now: now),
            other.metadataSize != current.metadataSize || other.source != current.source
        {
            // Nobody is asked for this attempt and the most responsive peers would fetch another (or its
            // one source is paused): peers that do not answer must not hold back those that would.
            attempt = other
        }
        if attempt == nil { attempt = startAttempt(now: now) }
        guard var current = attempt else { return [] }
        attempt = nil  // so the copy being changed is the only one, and its arrays are not copied

        var load: [Peer: Int] = [:]
        for request in current.pending.values { load[request.peer, default: 0] += 1 }
        let askable = peers.filter {
            isAvailable($0.value, now: now) && !peersWithWrongData.contains($0.key)
                && $0.value.metadataSize == current.metadataSize && current.accepts(from: $0.key)
        }.sorted { ($0.value.refusals, $0.value.order) < ($1.value.refusals, $1.value.order) }.map { $0.key }
        var requests: [Request] = []
        for piece in current.pieces.indices
        where current.pieces[piece] == nil && current.pending[piece] == nil {
            // The least busy peer; on ties the one that refused least, then the earliest. Peers that
            // let requests lapse, free again by turns, must not keep a piece from one that answers.
            guard let peer = askable.min(by: { load[$0, default: 0] < load[$1, default: 0] }),
                load[peer, default: 0] < options.maximumRequestsPerPeer
            else { break }
            load[peer, default: 0] += 1
            current.pending[piece] = PendingRequest(peer: peer, sentAt: now)
            current.askedOf[piece].insert(peer)
            requests.append(Request(peer: peer, piece: piece))
        }
        attempt = current
        return requests
    }

    /// Handles a `ut_metadata` message from `peer`.
    public mutating func receive(_ message: MetadataMessage, from peer: Peer, now: Instant) -> Outcome {
        guard infoDictionary == nil, let state = peers[peer], !peersWithWrongData.contains(peer) else {
            return .ignored
        }
        switch message {
        case .request:
            return .ignored
        case .reject(let piece):
            guard attempt?.pending[piece]?.peer == peer else { return .ignored }
            attempt?.pending[piece] = nil
            refused(by: peer, now: now)
            return .rejected(piece: piece)
        case .data(let piece, let totalSize, let payload):
            guard totalSize > 0, totalSize <= MetadataMessage.maximumMetadataSize,
                (0..<MetadataMessage.pieceCount(metadataSize: totalSize)).contains(piece),
                payload.count == MetadataMessage.pieceLength(piece: piece, metadataSize: totalSize)
            else { return .ignored }
            guard totalSize == state.metadataSize else {
                flag(peer)
                return .sentWrongData
            }
            // Only what was asked of this peer (late answers welcome): unasked pieces would let one peer
            // fill the metadata, to be found wrong only once it is whole.
            guard var current = attempt, current.metadataSize == totalSize, current.pieces[piece] == nil,
                current.accepts(from: peer), current.askedOf[piece].contains(peer)
            else { return .ignored }
            contributions[peer, default: [:]][piece] = Contribution(
                digest: SHA1.hash(payload), length: payload.count)
            attempt = nil  // so the copy being changed is the only one, and its arrays are not copied
            current.pending[piece] = nil
            current.pieces[piece] = payload
            current.suppliers[piece] = peer
            current.storedCount += 1
            guard current.storedCount == current.pieces.count else {
                attempt = current
                return .stored(piece: piece)
            }
            return check(current)
        }
    }

    /// Checks a complete attempt, already taken out of `attempt`, against the hashes.
    private mutating func check(_ complete: Attempt) -> Outcome {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(complete.metadataSize)
        for piece in complete.pieces { bytes += piece ?? [] }
        let suppliers = Set(complete.suppliers.compactMap { $0 })
        guard hashes.matches(bytes) else {
            fetchesFromSinglePeer = true
            if suppliers.count == 1 {
                for peer in suppliers { flag(peer) }
                return .verificationFailed(suppliers: suppliers, newlyFlagged: suppliers)
            }
            for peer in suppliers { peers[peer]?.isSuspect = true }
            return .verificationFailed(suppliers: suppliers, newlyFlagged: [])
        }
        infoDictionary = bytes
        var newlyFlagged: Set<Peer> = []
        var verifiedDigests: [Int: SHA1Digest] = [:]
        for (peer, pieces) in contributions {
            let wrong = pieces.contains { piece, contribution in
                guard piece * MetadataMessage.pieceLength < bytes.count else { return true }
                let range = MetadataMessage.pieceRange(piece: piece, metadataSize: bytes.count)
                guard contribution.length == range.count else { return true }
                let digest = verifiedDigests[piece] ?? SHA1.hash(bytes[range])
                verifiedDigests[piece] = digest
                return contribution.digest != digest
            }
            if wrong, peersWithWrongData.insert(peer).inserted { newlyFlagged.insert(peer) }
        }
        contributions = [:]
        return .completed(infoDictionary: bytes, newlyFlagged: newlyFlagged)
    }

    private func isAvailable(_ state: PeerState, now: Instant) -> Bool {
        state.pausedUntil.map { now >= $0 } ?? true
    }

    /// Whether some peer, paused or not, could still supply the attempt's missing pieces.
    private func canContinue(_ current: Attempt) -> Bool {
        peers.contains { peer, state in
            !peersWithWrongData.contains(peer) && state.metadataSize == current.metadataSize
                && current.accepts(from: peer)
        }
    }

    /// Whether an attempt waits on nobody and nobody can be asked for it now (its peers are paused).
    private func isStalled(_ current: Attempt, now: Instant) -> Bool {
        current.pending.isEmpty
            && !peers.contains { peer, state in
                isAvailable(state, now: now) && !peersWithWrongData.contains(peer)
                    && state.metadataSize == current.metadataSize && current.accepts(from: peer)
            }
    }

    /// A new attempt: before any failed check, for the size advertised by most of the available peers
    /// that refused least (the earliest peer's on a tie); after one, from the one available peer that
    /// refused least, one that is not a suspect on a tie, then the earliest.
    private func startAttempt(now: Instant) -> Attempt? {
        let candidates = peers.filter {
            isAvailable($0.value, now: now) && !peersWithWrongData.contains($0.key)
        }
        if fetchesFromSinglePeer {
            guard
                let source = candidates.min(by: {
                    ($0.value.refusals, $0.value.isSuspect ? 1 : 0, $0.value.order) < (
                        $1.value.refusals, $1.value.isSuspect ? 1 : 0, $1.value.order
                    )
                })
            else { return nil }
            return Attempt(metadataSize: source.value.metadataSize, source: source.key)
        }
        // Only the most responsive peers vote, so that peers claiming a size they never serve lose their
        // say as their refusals add up.
        let fewestRefusals = candidates.values.map { $0.refusals }.min() ?? 0
        var votes: [Int: (count: Int, earliest: Int)] = [:]
        for state in candidates.values where state.refusals == fewestRefusals {
            let vote = votes[state.metadataSize] ?? (0, state.order)
            votes[state.metadataSize] = (vote.count + 1, min(vote.earliest, state.order))
        }
        guard
            let size = votes.max(by: {
                ($0.value.count, -$0.value.earliest) < ($1.value.count, -$1.value.earliest)
            })?.key
        else { return nil }
        return Attempt(metadataSize: size, source: nil)
    }

    /// Frees the pieces whose requests timed out, pausing the peers that did not answer.
    private mutating func expireRequests(now: Instant) {
        guard let pending = attempt?.pending else { return }
        let timeout = options.requestTimeout.nanosecondCount
        var silent: Set<Peer> = []
        for (piece, request) in pending where now.nanoseconds(since: request.sentAt) >= timeout {
            attempt?.pending[piece] = nil
            silent.insert(request.peer)
        }
        // One refusal per peer, however many of its requests lapsed together.
        for peer in silent { refused(by: peer, now: now) }
    }

    /// Pauses a peer that rejected or ignored a request. A single-source attempt ends with its source.
    private mutating func refused(by peer: Peer, now: Instant) {
        let resumeAt = now.advanced(by: options.pauseAfterRefusal)
        peers[peer]?.pausedUntil = resumeAt
        peers[peer]?.refusals += 1
        if attempt?.source == peer { attempt = nil }
    }

    /// Marks a peer as having sent wrong data: it is never asked again, and the pieces of the current
    /// attempt that it supplied are thrown away.
    private mutating func flag(_ peer: Peer) {
        peersWithWrongData.insert(peer)
        contributions[peer] = nil
        dropRequests(of: peer)
        guard var current = attempt else { return }
        for piece in current.suppliers.indices where current.suppliers[piece] == peer {
            current.pieces[piece] = nil
            current.suppliers[piece] = nil
            current.storedCount -= 1
        }
        attempt = current
    }

    /// Forgets a peer's outstanding requests, so their pieces are asked of others; a single-source
    /// attempt ends with its source.
    private mutating func dropRequests(of peer: Peer) {
        guard let current = attempt else { return }
        if current.source == peer {
            attempt = nil
            return
        }
        attempt?.pending = current.pending.filter { $0.value.peer != peer }
    }
}
