import TorrentModel

/// What a `PeerConnection` tells the swarm layer. Byte ranges are views that live only for the duration
/// of the callback: copy what you keep.
public enum PeerEvent: ~Escapable {
    /// The peer's handshake was accepted; `negotiated` is the set of reserved bits both sides set.
    case handshakeCompleted(peer: Handshake, negotiated: ReservedBits)
    /// The peer's bitfield (validated size and spare bits); `PeerConnection.peerPieces` now matches it.
    case peerBitfield(Span<UInt8>)
    /// BEP 6.
    case peerHasAll
    /// BEP 6.
    case peerHasNone
    /// The peer completed a piece it did not have before (repeated haves are not reported).
    case peerHas(PieceIndex)
    case peerChokedUs
    case peerUnchokedUs
    case peerInterested
    case peerNotInterested
    /// The peer asks for a block: answer with `sendBlock` or `rejectRequest`. Requests that must be
    /// refused (we are choking the peer, we lack the piece, the queue is full) never get here.
    case requestReceived(BlockRange)
    /// The peer withdrew a request we had not served yet; drop any read under way for it.
    case cancelReceived(BlockRange)
    /// Part of a block we requested: `bytes` belong at `offsetInBlock` within `block`. The block is
    /// complete when `offsetInBlock + bytes.count == block.length`.
    case blockData(block: BlockRange, offsetInBlock: Int, bytes: Span<UInt8>)
    /// A request of ours will not be served: an explicit BEP 6 reject, or a choke without the fast
    /// extension, which drops every pending request. Request the block again elsewhere.
    case requestRejected(BlockRange)
    /// BEP 6: the peer suggests a piece.
    case suggestedPiece(PieceIndex)
    /// BEP 6: we may request this piece while choked (it does not mean the peer has it).
    case allowedFast(PieceIndex)
    /// BEP 10: an extended message; id 0 is the extension handshake (a bencoded dictionary).
    case extended(id: UInt8, payload: Span<UInt8>)
    /// BEP 5: the peer's DHT port.
    case dhtPort(UInt16)
    /// BEP 52: the peer asks for hashes of a v2 file's tree; answer with `hashes` or `hash reject`.
    case hashRequested(HashRequest)
}

/// The state machine of one peer connection: bytes, commands and the current time go in; bytes to send
/// (in `outbound`), events for the swarm and, when the peer breaks the protocol, a thrown
/// `DisconnectReason` come out. It does no I/O and reads no clock.
///
/// Invariants:
/// - `phase` only moves forward: idle → awaiting handshake → established → closed. Once closed, every
///   input rethrows `closeReason` and every command does nothing.
/// - Nothing but our handshake is written to `outbound` before the peer's handshake is accepted, and our
///   availability (bitfield, have-all or have-none) is the first message after it.
/// - `outgoingRequests` holds exactly the blocks we requested and have seen no piece or reject for;
///   `pendingOutgoingCount + abandonedOutgoingCount == outgoingRequests.count <= maximumOutgoingRequests`.
///   A piece or reject for any other block ends the connection.
/// - Every request the swarm makes is resolved by exactly one of: a complete run of `blockData` events,
///   or `requestRejected`, unless the swarm cancels it first, after which no event mentions it, or the
///   connection closes.
/// - `incomingRequests.count <= maximumIncomingRequests`; each is a valid block of a piece in
///   `localPieces` that we have neither served nor rejected. When we choke the peer it is emptied
///   (except allowed-fast pieces, with the fast extension).
/// - `peerPieces` reflects the peer's bitfield, have-all/none and haves; it is set at most once from a
///   bitfield, have-all or have-none, and only as the peer's first message. Later, it only grows: a late
///   bitfield or have-all (aria2 sends them in place of haves) adds pieces, reported as `peerHas`.
/// - Every structure is bounded by an option or by the piece count, so no peer input grows memory
///   without limit (`outbound` included: peer input that leaves more than `maximumQueuedOutboundBytes`
///   unsent ends the connection), and nothing is allocated per message once the request tables and
///   buffers have their capacity.
/// - Without the fast extension, abandoned requests are forgotten after `cancelGraceNanoseconds`; with
///   it they are kept until the peer answers, as BEP 6 promises it will.
public struct PeerConnection: Sendable {
    public enum Phase: Hashable, Sendable {
        case idle
        case awaitingHandshake
        case established
        case closed
    }

    private enum OutgoingRequest {
        case pending
        /// Cancelled by us, or dropped by a choke without the fast extension: its answer is discarded.
        case abandoned(since: Instant)
    }

    public let geometry: PieceGeometry
    /// The torrent's id in handshakes: the one given, or the alternative a peer that dialled us used.
    public private(set) var infoHash: InfoHash
    /// A hybrid torrent's other id (its truncated v2 infohash, BEP 52), accepted from a peer that
    /// dials us with it; our handshake then answers with it.
    public let alternativeInfoHash: InfoHash?
    public let localPeerID: PeerID
    /// Whether we dialled the peer (and so send our handshake first).
    public let initiatedLocally: Bool
    public let options: PeerConnectionOptions

    /// Bytes to send, in order. Take them (for example by swapping in an empty buffer with reserved
    /// capacity) and send them; the connection only ever appends.
    public var outbound: [UInt8] = []

    public private(set) var phase: Phase = .idle
    /// Why the connection ended, once it has.
    public private(set) var closeReason: DisconnectReason?
    /// The peer's handshake, once accepted.
    public private(set) var peerHandshake: Handshake?
    /// The reserved bits both sides set.
    public private(set) var negotiated: ReservedBits = []

    public private(set) var amChoking = true
    public private(set) var amInterested = false
    public private(set) var peerChoking = true
    public private(set) var peerInterested = false

    /// The pieces the peer has told us about.
    public private(set) var peerPieces: PieceSet
    /// Our pieces as announced (or to be announced) to the peer.
    public private(set) var localPieces: PieceSet

    /// Payload bytes of requested blocks received (discarded answers to cancelled requests excluded).
    public private(set) var downloadedPayloadBytes: UInt64 = 0
    /// Payload bytes of blocks sent.
    public private(set) var uploadedPayloadBytes: UInt64 = 0

    private var decoder: WireDecoder?
    private var handshakeSent = false
    /// Open from the handshake until the peer's first word on availability (bitfield, have, have all,
    /// have none). BEP 3 puts the bitfield first, but real clients send the extension handshake, the DHT
    /// port, or even interested (aria2) before it; what matters is that it never contradicts a HAVE.
    private var availabilityWindowOpen = false
    private var outgoingRequests: [BlockRange: OutgoingRequest] = [:]
    private var pendingOutgoingCount = 0
    private var abandonedOutgoingCount = 0
    private var incomingRequests: Set<BlockRange> = []
    private var consecutiveRefusedRequests = 0
    /// Pieces we told the peer it may request while choked.
    private var allowedFastForPeer: Set<PieceIndex> = []
    /// Pieces the peer told us we may request while choked.
    private var allowedFastFromPeer: Set<PieceIndex> = []
    /// Whether the piece message being received answers an abandoned request.
    private var discardingBlock = false
    private var startTime = Instant(nanoseconds: 0)
    private var lastReceivedTime = Instant(nanoseconds: 0)
    private var lastSentTime = Instant(nanoseconds: 0)
    /// The latest time passed in; commands, which take no time, are stamped with it.
    private var latestTime = Instant(nanoseconds: 0)

    /// - Parameters:
    ///   - alternativeInfoHash: a hybrid torrent's truncated v2 infohash (see ``alternativeInfoHash``).
    ///   - localPieces: the pieces we have now; pieces completed later are added with `sendHave`.
    ///   - initiatedLocally: whether we dialled the peer.
    public init(
        geometry: PieceGeometry, infoHash: InfoHash, alternativeInfoHash: InfoHash? = nil,
        localPeerID: PeerID,
        localPieces: PieceSet, initiatedLocally: Bool,
        options: PeerConnectionOptions = PeerConnectionOptions()
    ) {
        precondition(localPieces.pieceCount == geometry.pieceCount, "bitfield does not match the torrent")
        precondition(
            options.maximumIncomingRequests > 0 && options.maximumOutgoingRequests > 0
                && options.maximumConsecutiveRefusedRequests >= 0 && options.maximumAllowedFastPieces >= 0,
            "invalid peer connection limits")
        self.geometry = geometry
        self.infoHash = infoHash
        self.alternativeInfoHash = alternativeInfoHash
        self.localPeerID = localPeerID
        self.localPieces = localPieces
        self.initiatedLocally = initiatedLocally
        self.options = options
        self.peerPieces = PieceSet(pieceCount: geometry.pieceCount)
        self.decoder = WireDecoder(geometry: geometry, limits: options.limits, expectsHandshake: true)
        outgoingRequests.reserveCapacity(options.maximumOutgoingRequests)
        incomingRequests.reserveCapacity(options.maximumIncomingRequests)
        outbound.reserveCapacity(
            Handshake.byteCount + 5 + PieceSet.wireByteCount(pieceCount: localPieces.pieceCount))
    }

    // MARK: - State

    public var isEstablished: Bool { phase == .established }
    /// Whether BEP 6 is in effect (both sides set the bit).
    public var fastExtensionEnabled: Bool { negotiated.contains(.fastExtension) }
    /// Whether BEP 10 is in effect (both sides set the bit).
    public var extensionProtocolEnabled: Bool { negotiated.contains(.extensionProtocol) }
    /// Requests of ours awaiting an answer, cancelled ones excluded.
    public var pendingRequestCount: Int { pendingOutgoingCount }
    /// Requests we cancelled (or a choke dropped) whose answer may still arrive and will be discarded.
    /// They count against `maximumOutgoingRequests` until answered or, without BEP 6, forgotten.
    public var abandonedRequestCount: Int { abandonedOutgoingCount }
    /// Whether a request of ours for `block` awaits an answer (cancelled ones excluded).
    public func isPending(_ block: BlockRange) -> Bool {
        if case .pending = outgoingRequests[block] { return true }
        return false
    }
    /// Requests from the peer we have queued and not yet served or rejected.
    public var queuedIncomingRequestCount: Int { incomingRequests.count }
    /// Whether the peer's request for `block` is queued (not yet served, rejected, cancelled or dropped
    /// by a choke): worth a disk read.
    public func isIncomingRequestQueued(_ block: BlockRange) -> Bool { incomingRequests.contains(block) }
    /// Whether the peer told us (BEP 6) that we may request `piece` while choked.
    public func isAllowedFast(_ piece: PieceIndex) -> Bool { allowedFastFromPeer.contains(piece) }

    // MARK: - Inputs

    /// Starts the connection: the initiator sends its handshake now; the other side waits for the
    /// peer's, so that it says nothing to a peer that asks for another torrent.
    public mutating func start(now: Instant) {
        guard phase == .idle else { return }
        phase = .awaitingHandshake
        startTime = now
        lastReceivedTime = now
        advanceTime(now)
        lastSentTime = now
        if initiatedLocally { sendHandshake() }
    }

    /// Feeds bytes received from the peer, in order, in chunks of any size.
    ///
    /// Events are reported through `onEvent` as they are decoded. If the peer breaks the protocol the
    /// connection closes and the reason is thrown; events before the offending message were reported.
    /// `onEvent` must not call back into this connection (collect what to do and do it after).
    public mutating func receive(
        _ bytes: Span<UInt8>, now: Instant, onEvent: (borrowing PeerEvent) -> Void
    ) throws(DisconnectReason) {
        if let closeReason { throw closeReason }
        if phase == .idle { start(now: now) }
        advanceTime(now)
        lastReceivedTime = now
        guard var decoder = decoder.take() else { preconditionFailure("the decoder is always put back") }
        defer { self.decoder = decoder }
        do {
            try decoder.feed(bytes) { (event: borrowing WireEvent) throws(DisconnectReason) in
                try self.handle(event, onEvent: onEvent)
            }
            try checkOutboundBound()
        } catch {
            close(error)
            throw error
        }
    }

    /// Runs the timers: handshake timeout, silence timeout, keep-alives and the expiry of cancelled
    /// requests. Call it every second or so; nothing on the data path waits for it.
    public mutating func timerTick(now: Instant) throws(DisconnectReason) {
        if let closeReason { throw closeReason }
        advanceTime(now)
        switch phase {
        case .idle, .closed:
            return
        case .awaitingHandshake:
            let waited = now.nanoseconds(since: startTime)
            if waited >= options.handshakeTimeoutNanoseconds {
                close(.handshakeTimedOut(waitedNanoseconds: waited))
                throw .handshakeTimedOut(waitedNanoseconds: waited)
            }
        case .established:
            let silent = now.nanoseconds(since: lastReceivedTime)
            if silent >= options.silenceTimeoutNanoseconds {
                let reason = DisconnectReason.peerSilent(
                    silentNanoseconds: silent, limitNanoseconds: options.silenceTimeoutNanoseconds)
                close(reason)
                throw reason
            }
            if now.nanoseconds(since: lastSentTime) >= options.keepAliveIntervalNanoseconds {
                append(.keepAlive)
            }
            do {
                try checkOutboundBound()
            } catch {
                close(error)
                throw error
            }
            expireAbandonedRequests(now: now)
        }
    }

    // MARK: - Commands

    /// Tells the peer we want something it has. Returns whether a message was sent.
    @discardableResult
    public mutating func sendInterested() -> Bool {
        guard isEstablished, !amInterested else { return false }
        amInterested = true
        append(.interested)
        return true
    }

    /// Tells the peer we want nothing it has (BEP 3: keep this up to date even while choked).
    @discardableResult
    public mutating func sendNotInterested() -> Bool {
        guard isEstablished, amInterested else { return false }
        amInterested = false
        append(.notInterested)
        return true
    }

    /// Chokes the peer. Its queued requests are dropped; with the fast extension each is rejected
    /// (BEP 6: choke first, then reject), except those for pieces we allowed fast.
    @discardableResult
    public mutating func choke() -> Bool {
        guard isEstablished, !amChoking else { return false }
        amChoking = true
        append(.choke)
        if fastExtensionEnabled {
            if allowedFastForPeer.isEmpty {
                for block in incomingRequests { append(.rejectRequest(block)) }
                incomingRequests.removeAll(keepingCapacity: true)
            } else {
                // Rare (allowed-fast grants are few); removing one at a time needs no scratch allocation.
                while let index = incomingRequests.firstIndex(where: {
                    !allowedFastForPeer.contains($0.piece)
                }) {
                    append(.rejectRequest(incomingRequests[index]))
                    incomingRequests.remove(at: index)
                }
            }
        } else {
            incomingRequests.removeAll(keepingCapacity: true)
        }
        return true
    }

    /// Unchokes the peer: it may request blocks.
    @discardableResult
    public mutating func unchoke() -> Bool {
        guard isEstablished, amChoking else { return false }
        amChoking = false
        consecutiveRefusedRequests = 0
        append(.unchoke)
        return true
    }

    /// Records that we completed (and verified) `piece`, and announces it if the handshake is done;
    /// before that, it will be part of the bitfield we send. Returns whether a `have` was sent.
    @discardableResult
    public mutating func sendHave(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < geometry.pieceCount, "\(piece) is out of range")
        guard localPieces.insert(piece), isEstablished else { return false }
        append(.have(piece))
        return true
    }

    /// Requests a block. It is refused (returns false) unless the handshake is done, the peer has the
    /// piece, the peer is not choking us (or allowed the piece fast), the block is not already
    /// outstanding, and fewer than `maximumOutgoingRequests` requests are outstanding.
    @discardableResult
    public mutating func request(_ block: BlockRange) -> Bool {
        precondition(geometry.isValid(block), "\(block) is not a valid block of this torrent")
        guard isEstablished, peerPieces.contains(block.piece) else { return false }
        guard !peerChoking || allowedFastFromPeer.contains(block.piece) else { return false }
        guard outgoingRequests[block] == nil, outgoingRequests.count < options.maximumOutgoingRequests else {
            return false
        }
        outgoingRequests[block] = .pending
        pendingOutgoingCount += 1
        append(.request(block))
        return true
    }

    /// Cancels a pending request. Its block may still arrive (BEP 6: the peer answers every request,
    /// cancelled or not); it is then discarded silently. Returns whether a cancel was sent.
    @discardableResult
    public mutating func cancel(_ block: BlockRange) -> Bool {
        guard isEstablished, case .pending = outgoingRequests[block] else { return false }
        outgoingRequests[block] = .abandoned(since: latestTime)
        pendingOutgoingCount -= 1
        abandonedOutgoingCount += 1
        append(.cancel(block))
        return true
    }

    /// Serves a request the peer made (`requestReceived`). Returns false, sending nothing, if the request
    /// is no longer queued (the peer cancelled it or we choked the peer since).
    @discardableResult
    public mutating func sendBlock(_ block: BlockRange, payload: Span<UInt8>) -> Bool {
        precondition(payload.count == Int(block.length), "a block's payload must be exactly its length")
        guard isEstablished, incomingRequests.remove(block) != nil else { return false }
        WireEncoder.appendPiece(block, payload: payload, into: &outbound)
        uploadedPayloadBytes += UInt64(block.length)
        lastSentTime = latestTime
        return true
    }

    /// Serves a request like `sendBlock`, but appends only the 13-byte piece header, for a sender that
    /// transmits the payload from its own buffer (a disk read, a piece in memory) without copying it here.
    ///
    /// Returns the position in `outbound` right after the header: the caller must send
    /// `outbound[..<position]`, then the `block.length` payload bytes, then the rest of `outbound`. Returns
    /// nil, appending nothing, if the request is no longer queued.
    public mutating func sendBlockHeader(_ block: BlockRange) -> Int? {
        guard isEstablished, incomingRequests.remove(block) != nil else { return nil }
        WireEncoder.appendPieceHeader(for: block, into: &outbound)
        uploadedPayloadBytes += UInt64(block.length)
        lastSentTime = latestTime
        return outbound.count
    }

    /// Declines a queued request of the peer's: with the fast extension it is told so; without, the
    /// request is simply dropped (BEP 3 has no way to say no). Returns whether the request was queued.
    @discardableResult
    public mutating func rejectRequest(_ block: BlockRange) -> Bool {
        guard isEstablished, incomingRequests.remove(block) != nil else { return false }
        if fastExtensionEnabled { append(.rejectRequest(block)) }
        return true
    }

    /// BEP 6: lets the peer request `piece` while we choke it. Returns whether the grant was sent (it
    /// needs the fast extension, and at most `maximumAllowedFastPieces` are granted).
    @discardableResult
    public mutating func sendAllowedFast(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < geometry.pieceCount, "\(piece) is out of range")
        guard isEstablished, fastExtensionEnabled else { return false }
        guard allowedFastForPeer.count < options.maximumAllowedFastPieces,
            allowedFastForPeer.insert(piece).inserted
        else { return false }
        append(.allowedFast(piece))
        return true
    }

    /// BEP 6: suggests a piece to the peer. Needs the fast extension.
    @discardableResult
    public mutating func sendSuggestPiece(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < geometry.pieceCount, "\(piece) is out of range")
        guard isEstablished, fastExtensionEnabled else { return false }
        append(.suggestPiece(piece))
        return true
    }

    /// BEP 10: sends an extended message (id 0 is the extension handshake). Needs the extension protocol.
    @discardableResult
    public mutating func sendExtended(id: UInt8, payload: Span<UInt8>) -> Bool {
        guard isEstablished, extensionProtocolEnabled else { return false }
        WireEncoder.appendExtended(id: id, payload: payload, into: &outbound)
        lastSentTime = latestTime
        return true
    }

    /// BEP 5: tells the peer our DHT port. Needs both sides to have set the DHT bit.
    @discardableResult
    public mutating func sendPort(_ port: UInt16) -> Bool {
        guard isEstablished, negotiated.contains(.dht) else { return false }
        append(.port(port))
        return true
    }

    // MARK: - Received messages

    private mutating func handle(
        _ event: borrowing WireEvent, onEvent: (borrowing PeerEvent) -> Void
    ) throws(DisconnectReason) {
        switch event {
        case .handshake(let handshake):
            try acceptHandshake(handshake, onEvent: onEvent)
        case .message(let message):
            try handle(message, onEvent: onEvent)
        case .bitfield(let bytes):
            guard availabilityWindowOpen else {
                // aria2 sends a bitfield mid-connection in place of a batch of haves; BEP 3 forbids it,
                // but read as haves it contradicts nothing.
                for index in 0..<geometry.pieceCount where bytes[index >> 3] & (0x80 >> UInt8(index & 7)) != 0
                {
                    let piece = PieceIndex(UInt32(index))
                    if peerPieces.insert(piece) { onEvent(.peerHas(piece)) }
                }
                return
            }
            availabilityWindowOpen = false
            peerPieces.assign(validatedWireBytes: bytes)
            onEvent(.peerBitfield(bytes))
        case .blockData(let block, let offsetInBlock, let bytes):
            if offsetInBlock == 0 { try beginBlock(block) }
            guard !discardingBlock else { return }
            downloadedPayloadBytes += UInt64(bytes.count)
            onEvent(.blockData(block: block, offsetInBlock: offsetInBlock, bytes: bytes))
        case .extended(let id, let payload):
            guard extensionProtocolEnabled else { throw .extensionProtocolNotNegotiated }
            onEvent(.extended(id: id, payload: payload))
        case .unknown:
            // BEP 3 leaves room for messages we do not know (BEP 52 hash messages, for one); the decoder
            // skipped the bytes within its limit.
            break
        }
    }

    private mutating func acceptHandshake(
        _ handshake: Handshake, onEvent: (borrowing PeerEvent) -> Void
    ) throws(DisconnectReason) {
        if handshake.infoHash != infoHash {
            // Only a peer that dialled us may pick the id: ours, once sent, is the one it must echo.
            guard !handshakeSent, let alternativeInfoHash, handshake.infoHash == alternativeInfoHash else {
                throw .infoHashMismatch(expected: infoHash, received: handshake.infoHash)
            }
            infoHash = alternativeInfoHash
        }
        guard handshake.peerID != localPeerID else { throw .connectedToSelf }
        if let expected = options.expectedPeerID, expected != handshake.peerID {
            throw .peerIDMismatch(expected: expected, received: handshake.peerID)
        }
        peerHandshake = handshake
        negotiated = options.reserved.intersection(handshake.reserved)
        if !handshakeSent { sendHandshake() }
        phase = .established
        availabilityWindowOpen = true
        sendAvailability()
        onEvent(.handshakeCompleted(peer: handshake, negotiated: negotiated))
    }

    private mutating func handle(
        _ message: PeerMessage, onEvent: (borrowing PeerEvent) -> Void
    ) throws(DisconnectReason) {
        if let id = message.id, id.needsFastExtension, !fastExtensionEnabled {
            throw .fastExtensionNotNegotiated(id: id)
        }
        if case .have = message { availabilityWindowOpen = false }
        switch message {
        case .keepAlive:
            break
        case .port(let port):
            onEvent(.dhtPort(port))
        case .hashRequest(let request):
            onEvent(.hashRequested(request))
        case .haveAll where !availabilityWindowOpen:
            // aria2 sends have-all once it completes, in place of its last haves (as with a late bitfield).
            // Once the peer has everything a repeat changes nothing, and must not cost a walk each.
            guard !peerPieces.isComplete else { break }
            for index in 0..<geometry.pieceCount {
                let piece = PieceIndex(UInt32(index))
                if peerPieces.insert(piece) { onEvent(.peerHas(piece)) }
            }
        case .haveAll, .haveNone:
            // A late have-none would take back pieces the peer announced: that is a lie, not a batch.
            guard availabilityWindowOpen else { throw .misplacedAvailability(id: message.id ?? .haveAll) }
            availabilityWindowOpen = false
            if case .haveAll = message {
                peerPieces.insertAll()
                onEvent(.peerHasAll)
            } else {
                peerPieces.removeAll()
                onEvent(.peerHasNone)
            }
        case .choke:
            peerChoking = true
            onEvent(.peerChokedUs)
            if !fastExtensionEnabled { dropPendingRequestsAfterChoke(onEvent: onEvent) }
        case .unchoke:
            // Said again while unchoked it changes nothing, and each one reported costs a pick.
            guard peerChoking else { break }
            peerChoking = false
            onEvent(.peerUnchokedUs)
        case .interested:
            peerInterested = true
            onEvent(.peerInterested)
        case .notInterested:
            peerInterested = false
            onEvent(.peerNotInterested)
        case .have(let piece):
            if peerPieces.insert(piece) { onEvent(.peerHas(piece)) }
        case .request(let block):
            try receiveRequest(block, onEvent: onEvent)
        case .cancel(let block):
            guard incomingRequests.remove(block) != nil else { return }
            // BEP 6: a cancelled request still gets exactly one answer; we have not served it, so reject.
            if fastExtensionEnabled { append(.rejectRequest(block)) }
            onEvent(.cancelReceived(block))
        case .rejectRequest(let block):
            switch outgoingRequests.removeValue(forKey: block) {
            case .pending:
                pendingOutgoingCount -= 1
                onEvent(.requestRejected(block))
            case .abandoned:
                abandonedOutgoingCount -= 1
            case nil:
                throw .unrequestedReject(block)
            }
        case .suggestPiece(let piece):
            onEvent(.suggestedPiece(piece))
        case .allowedFast(let piece):
            guard allowedFastFromPeer.count < options.maximumAllowedFastPieces,
                allowedFastFromPeer.insert(piece).inserted
            else { return }
            onEvent(.allowedFast(piece))
        }
    }

    private mutating func receiveRequest(
        _ block: BlockRange, onEvent: (borrowing PeerEvent) -> Void
    ) throws(DisconnectReason) {
        let permitted = !amChoking || (fastExtensionEnabled && allowedFastForPeer.contains(block.piece))
        guard permitted, localPieces.contains(block.piece) else {
            try refuse(block)
            return
        }
        // A duplicate would get two answers for one request; ignore it.
        guard !incomingRequests.contains(block) else { return }
        guard incomingRequests.count < options.maximumIncomingRequests else {
            guard fastExtensionEnabled else {
                throw .requestFlood(count: incomingRequests.count + 1, limit: options.maximumIncomingRequests)
            }
            try refuse(block)
            return
        }
        consecutiveRefusedRequests = 0
        incomingRequests.insert(block)
        onEvent(.requestReceived(block))
    }

    /// Refuses a request: rejected with the fast extension, ignored without (BEP 3), and counted so that
    /// a peer that keeps asking regardless is cut off.
    private mutating func refuse(_ block: BlockRange) throws(DisconnectReason) {
        consecutiveRefusedRequests += 1
        guard consecutiveRefusedRequests <= options.maximumConsecutiveRefusedRequests else {
            throw .requestFlood(
                count: consecutiveRefusedRequests, limit: options.maximumConsecutiveRefusedRequests)
        }
        if fastExtensionEnabled { append(.rejectRequest(block)) }
    }

    /// The first bytes of a piece message: it must answer a request of ours.
    private mutating func beginBlock(_ block: BlockRange) throws(DisconnectReason) {
        availabilityWindowOpen = false
        switch outgoingRequests.removeValue(forKey: block) {
        case .pending:
            pendingOutgoingCount -= 1
            discardingBlock = false
        case .abandoned:
            abandonedOutgoingCount -= 1
            discardingBlock = true
        case nil:
            throw .unrequestedBlock(block)
        }
    }

    /// BEP 3 without the fast extension: a choke discards every pending request. Blocks already on the
    /// wire may still arrive, so the requests are kept as abandoned for the grace period.
    private mutating func dropPendingRequestsAfterChoke(onEvent: (borrowing PeerEvent) -> Void) {
        guard pendingOutgoingCount > 0 else { return }
        for index in outgoingRequests.indices {
            guard case .pending = outgoingRequests.values[index] else { continue }
            outgoingRequests.values[index] = .abandoned(since: latestTime)
            onEvent(.requestRejected(outgoingRequests.keys[index]))
        }
        abandonedOutgoingCount += pendingOutgoingCount
        pendingOutgoingCount = 0
    }

    private mutating func expireAbandonedRequests(now: Instant) {
        // BEP 6 peers answer every request, so their answers are awaited for as long as it takes.
        guard abandonedOutgoingCount > 0, !fastExtensionEnabled else { return }
        let grace = options.cancelGraceNanoseconds
        // Removing one at a time keeps this allocation-free; it runs on timer ticks, not per message.
        while let index = outgoingRequests.firstIndex(where: {
            if case .abandoned(let since) = $0.value { return now.nanoseconds(since: since) >= grace }
            return false
        }) {
            outgoingRequests.remove(at: index)
            abandonedOutgoingCount -= 1
        }
    }

    // MARK: - Sending

    private mutating func sendHandshake() {
        Handshake(reserved: options.reserved, infoHash: infoHash, peerID: localPeerID).encode(into: &outbound)
        handshakeSent = true
        lastSentTime = latestTime
    }

    /// Our first message after the handshake. BEP 6 wants exactly one of bitfield, have-all or have-none;
    /// BEP 3 lets a peer with nothing skip the bitfield.
    private mutating func sendAvailability() {
        if fastExtensionEnabled {
            if localPieces.isEmpty {
                append(.haveNone)
            } else if localPieces.isComplete {
                append(.haveAll)
            } else {
                appendLocalBitfield()
            }
        } else if !localPieces.isEmpty {
            appendLocalBitfield()
        }
    }

    private mutating func appendLocalBitfield() {
        // A local reference (no copy) keeps the read of our bitfield apart from the write to `outbound`.
        let bitfield = localPieces.wireBytes
        WireEncoder.appendBitfield(bitfield.span, into: &outbound)
        lastSentTime = latestTime
    }

    private mutating func append(_ message: PeerMessage) {
        message.encode(into: &outbound)
        lastSentTime = latestTime
    }

    /// Checked after peer input: bytes we queue in answer to a peer that does not read pile up here.
    private func checkOutboundBound() throws(DisconnectReason) {
        guard outbound.count <= options.maximumQueuedOutboundBytes else {
            throw .peerNotReading(queuedBytes: outbound.count, limit: options.maximumQueuedOutboundBytes)
        }
    }

    private mutating func advanceTime(_ now: Instant) {
        if now > latestTime { latestTime = now }
    }

    private mutating func close(_ reason: DisconnectReason) {
        phase = .closed
        closeReason = reason
    }
}
