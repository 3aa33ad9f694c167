// libFuzzer harness for the peer connection state machine. Built by run.sh, not by SwiftPM.
import PeerWire
import TorrentModel

/// Drives one `PeerConnection` with a script read from the input: raw peer bytes, well-formed peer
/// messages with fuzzed fields, answers to our own requests, the passing of time, and every command the
/// swarm layer gives. The connection must never trap. When it gives up, it must do so with a
/// `DisconnectReason` from the right source (time or input) and stay closed with it. Its events must
/// agree with a model of what was asked: blocks and rejects only for requests of ours still pending,
/// each request resolved once, block data in order, requests from the peer only for pieces we have and
/// within the queue, nothing before the handshake. Its counters must match the model, and its limits
/// must hold. Everything it sends must decode without error on the peer's side, handshake first and
/// availability next.
@_cdecl("LLVMFuzzerTestOneInput")
public func peerConnectionFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    var driver = Driver(&input)
    while !input.isAtEnd && driver.closed == nil {
        driver.step(&input)
        driver.checkModel()
    }
    driver.flush()
    if let reason = driver.closed { driver.checkClosed(reason) }
    return 0
}

/// The shapes of torrent the script can pick: small pieces of tiny blocks with a short last piece (so
/// block arithmetic is exercised cheaply), one piece of one byte, the unit tests' torrent with standard
/// blocks, and no pieces at all.
private let geometries = [
    PieceGeometry(totalLength: 1000, pieceLength: 64, blockLength: 16),
    PieceGeometry(totalLength: 1, pieceLength: 1),
    PieceGeometry(totalLength: 5 * 32768 + 10000, pieceLength: 32768),
    PieceGeometry(totalLength: 0, pieceLength: 16384),
]

private let infoHash = InfoHash([UInt8](repeating: 0xaa, count: 20))!
private let otherInfoHash = InfoHash([UInt8](repeating: 0xbb, count: 20))!
private let ourPeerID = PeerID([UInt8](repeating: 0x01, count: 20))!
private let remotePeerID = PeerID([UInt8](repeating: 0x02, count: 20))!
private let otherPeerID = PeerID([UInt8](repeating: 0x03, count: 20))!

/// An escapable summary of a `PeerEvent`: what the model needs.
private enum Event {
    case handshakeCompleted
    case peerBitfield(byteCount: Int)
    case peerHasAll
    case peerHas(PieceIndex)
    case requestReceived(BlockRange)
    case cancelReceived(BlockRange)
    case blockData(BlockRange, offsetInBlock: Int, byteCount: Int)
    case requestRejected(BlockRange)
    case piece(PieceIndex)
    case extended
    case other

    init(_ event: borrowing PeerEvent) {
        switch event {
        case .handshakeCompleted: self = .handshakeCompleted
        case .peerBitfield(let bytes): self = .peerBitfield(byteCount: bytes.count)
        case .peerHasAll: self = .peerHasAll
        case .peerHas(let piece): self = .peerHas(piece)
        case .requestReceived(let block): self = .requestReceived(block)
        case .cancelReceived(let block): self = .cancelReceived(block)
        case .blockData(let block, let offset, let bytes):
            self = .blockData(block, offsetInBlock: offset, byteCount: bytes.count)
        case .requestRejected(let block): self = .requestRejected(block)
        case .suggestedPiece(let piece), .allowedFast(let piece): self = .piece(piece)
        case .extended: self = .extended
        case .peerHasNone, .peerChokedUs, .peerUnchokedUs, .peerInterested, .peerNotInterested, .dhtPort,
            .hashRequested:
            self = .other
        }
    }
}

/// The connection, the model it is checked against, and the peer's decoder for what we send.
private struct Driver {
    var connection: PeerConnection
    let geometry: PieceGeometry
    let options: PeerConnectionOptions
    var now = Instant.zero
    /// Why the connection closed, once it has.
    var closed: DisconnectReason?

    /// Our pending requests, in the order made (arrays, not sets, so that a run replays exactly).
    private var requested: [BlockRange] = []
    /// Requests we cancelled or a choke dropped: answering them must produce no event.
    private var abandoned: [BlockRange] = []
    /// Blocks arriving now, and how many of their bytes have been reported.
    private var arriving: [BlockRange: Int] = [:]
    /// The peer's requests we hold, in arrival order.
    private var queued: [BlockRange] = []
    /// Pieces we allowed the peer to request while choked.
    private var grantedFast: Set<PieceIndex> = []
    private var handshakeReported = false

    /// The peer's view of our bytes.
    private var peerDecoder: WireDecoder
    private var sentByteCount = 0
    private var peerMessageCount = 0

    init(_ input: inout FuzzInput) {
        let setup = input.byte()
        geometry = geometries[Int(setup & 3)]
        var options = PeerConnectionOptions()
        options.reserved = Self.reserved(setup >> 3)
        var localPieces = PieceSet(pieceCount: geometry.pieceCount)
        switch setup >> 6 {
        case 1: localPieces.insertAll()
        case 2, 3:
            let pattern = input.byte()
            for piece in 0..<geometry.pieceCount where pattern >> UInt8(piece % 8) & 1 != 0 {
                localPieces.insert(PieceIndex(piece))
            }
        default: break
        }
        let limits = input.byte()
        options.maximumIncomingRequests = 1 + Int(limits & 7)
        options.maximumOutgoingRequests = 1 + Int(limits >> 3 & 7)
        if limits & 0x40 != 0 {
            options.maximumQueuedOutboundBytes = 512
            options.limits = WireLimits(maximumExtendedPayloadBytes: 64, maximumUnknownMessageBytes: 16)
        }
        if limits & 0x80 != 0 { options.expectedPeerID = remotePeerID }
        let more = input.byte()
        options.maximumConsecutiveRefusedRequests = Int(more & 15)
        options.maximumAllowedFastPieces = Int(more >> 4 & 7)
        self.options = options
        connection = PeerConnection(
            geometry: geometry, infoHash: infoHash, localPeerID: ourPeerID, localPieces: localPieces,
            initiatedLocally: more & 0x80 != 0, options: options)
        peerDecoder = WireDecoder(geometry: geometry, expectsHandshake: true)
    }

    /// Three bits: DHT, fast extension, extension protocol.
    static func reserved(_ bits: UInt8) -> ReservedBits {
        var reserved: ReservedBits = []
        if bits & 1 != 0 { reserved.insert(.dht) }
        if bits & 2 != 0 { reserved.insert(.fastExtension) }
        if bits & 4 != 0 { reserved.insert(.extensionProtocol) }
        return reserved
    }

    mutating func step(_ input: inout FuzzInput) {
        switch input.byte() % 15 {
        case 0: receive(input.prefix(Int(input.byte())))
        case 1: receiveHandshake(&input)
        case 2: receive(peerMessage(&input))
        case 3: receivePiece(&input)
        case 4:
            var bytes: [UInt8] = []
            let payload = input.prefix(Int(input.byte()))
            WireEncoder.appendExtended(id: input.byte(), payload: payload.span, into: &bytes)
            receive(bytes)
        case 5: tick(seconds: UInt64(input.byte()))
        case 6:
            _ = input.byte() & 1 == 0 ? connection.sendInterested() : connection.sendNotInterested()
        case 7: chokeOrUnchoke(choke: input.byte() & 1 == 0)
        case 8:
            guard geometry.pieceCount > 0 else { return }
            connection.sendHave(PieceIndex(Int(input.byte()) % geometry.pieceCount))
        case 9: request(&input)
        case 10: cancel(&input)
        case 11: serve(&input)
        case 12:
            guard geometry.pieceCount > 0 else { return }
            let piece = PieceIndex(Int(input.byte()) % geometry.pieceCount)
            if input.byte() & 1 == 0 {
                if connection.sendAllowedFast(piece) { grantedFast.insert(piece) }
            } else {
                connection.sendSuggestPiece(piece)
            }
        case 13:
            if input.byte() & 1 == 0 {
                let payload = input.prefix(Int(input.byte()))
                connection.sendExtended(id: input.byte(), payload: payload.span)
            } else {
                connection.sendPort(input.uint16())
            }
        default: flush()
        }
    }

    // MARK: - What the peer sends

    private mutating func receive(_ bytes: [UInt8]) {
        var events: [Event] = []
        do {
            try connection.receive(bytes.span, now: now) { events.append(Event($0)) }
            precondition(
                connection.outbound.count <= options.maximumQueuedOutboundBytes, "outbound over its bound")
        } catch {
            switch error {
            case .handshakeTimedOut, .peerSilent: preconditionFailure("a timer reason from input: \(error)")
            default: closed = error
            }
        }
        for event in events { apply(event) }
    }

    /// A handshake for our torrent or another, from the peer, from ourselves or from a stranger, with
    /// fuzzed reserved bits, perhaps in two parts.
    private mutating func receiveHandshake(_ input: inout FuzzInput) {
        let choice = input.byte()
        var reserved = Self.reserved(choice)
        if choice & 8 != 0 { reserved.insert(ReservedBits(rawValue: 1 << 63)) }
        let peerID = [remotePeerID, remotePeerID, ourPeerID, otherPeerID][Int(choice >> 4 & 3)]
        var bytes: [UInt8] = []
        Handshake(reserved: reserved, infoHash: choice & 0x40 == 0 ? infoHash : otherInfoHash, peerID: peerID)
            .encode(into: &bytes)
        receiveSplit(bytes, at: choice & 0x80 != 0 ? Int(input.byte()) : nil)
    }

    /// A fixed-size message, a bitfield or an unknown one, with fields that are often out of range.
    private mutating func peerMessage(_ input: inout FuzzInput) -> [UInt8] {
        var bytes: [UInt8] = []
        let kind = input.byte()
        let messages: [PeerMessage]
        switch kind % 16 {
        case 14:
            let byteCount = PieceSet.wireByteCount(pieceCount: geometry.pieceCount) + Int(kind >> 4 & 1)
            WireEncoder.appendBitfield(input.bytes(byteCount).span, into: &bytes)
            return bytes
        case 15:
            let length = Int(input.byte())
            bytes = bigEndian(UInt32(length)) + input.bytes(length)
            return bytes
        case 0: messages = [.keepAlive]
        case 1: messages = [.choke]
        case 2: messages = [.unchoke]
        case 3: messages = [.interested]
        case 4: messages = [.notInterested]
        case 5: messages = [.have(piece(&input))]
        case 6: messages = [.request(block(&input))]
        case 7: messages = [.cancel(block(&input))]
        case 8: messages = [.port(input.uint16())]
        case 9: messages = [.suggestPiece(piece(&input))]
        case 10: messages = [.haveAll]
        case 11: messages = [.haveNone]
        case 12: messages = [.rejectRequest(block(&input))]
        default: messages = [.allowedFast(piece(&input))]
        }
        for message in messages { message.encode(into: &bytes) }
        return bytes
    }

    /// A piece message answering one of our requests, a cancelled one, or any block, perhaps in two parts.
    private mutating func receivePiece(_ input: inout FuzzInput) {
        let choice = input.byte()
        let candidates = [requested, abandoned][Int(choice & 1)]
        let block: BlockRange
        if choice & 2 == 0, !candidates.isEmpty {
            block = candidates[Int(input.byte()) % candidates.count]
        } else {
            block = self.block(&input)
        }
        // Only valid blocks can be encoded as a whole message of their length; others are framed as a
        // header alone, which the decoder must refuse before any payload.
        var bytes: [UInt8] = []
        if geometry.isValid(block) {
            WireEncoder.appendPiece(block, payload: Self.payload(block).span, into: &bytes)
        } else {
            WireEncoder.appendPieceHeader(for: block, into: &bytes)
        }
        receiveSplit(bytes, at: choice & 4 != 0 ? Int(input.byte()) : nil)
    }

    private mutating func receiveSplit(_ bytes: [UInt8], at split: Int?) {
        guard let split, bytes.count > 1 else { return receive(bytes) }
        let cut = 1 + split % (bytes.count - 1)
        receive(Array(bytes[..<cut]))
        if closed == nil { receive(Array(bytes[cut...])) }
    }

    // MARK: - Time and commands

    private mutating func tick(seconds: UInt64) {
        now = now.adding(seconds: seconds)
        do {
            try connection.timerTick(now: now)
        } catch {
            switch error {
            case .handshakeTimedOut, .peerSilent, .peerNotReading: closed = error
            default: preconditionFailure("an input reason from the timer: \(error)")
            }
        }
    }

    private mutating func chokeOrUnchoke(choke: Bool) {
        guard choke else {
            connection.unchoke()
            return
        }
        guard connection.choke() else { return }
        // BEP 6 lets allowed-fast requests survive a choke; everything else is dropped (and rejected).
        let fast = connection.fastExtensionEnabled
        queued.removeAll { !(fast && grantedFast.contains($0.piece)) }
    }

    private mutating func request(_ input: inout FuzzInput) {
        guard geometry.pieceCount > 0 else { return }
        let block = validBlock(&input)
        guard connection.request(block) else { return }
        precondition(!requested.contains(block), "a block requested twice")
        requested.append(block)
        abandoned.removeAll { $0 == block }
    }

    private mutating func cancel(_ input: inout FuzzInput) {
        guard !requested.isEmpty else { return }
        let block = requested[Int(input.byte()) % requested.count]
        precondition(connection.cancel(block), "a pending request could not be cancelled")
        requested.removeAll { $0 == block }
        abandoned.append(block)
    }

    /// Answers one of the peer's queued requests: with the block, with its header alone, or with a reject.
    private mutating func serve(_ input: inout FuzzInput) {
        guard !queued.isEmpty else { return }
        let choice = input.byte()
        let block = queued[Int(choice >> 2) % queued.count]
        switch choice & 3 {
        case 0:
            precondition(
                connection.sendBlock(block, payload: Self.payload(block).span), "queued block refused")
        case 1:
            guard let position = connection.sendBlockHeader(block) else {
                preconditionFailure("queued block refused")
            }
            // The caller sends the header, then the payload from its own buffer, then the rest.
            send(Array(connection.outbound[..<position]) + Self.payload(block))
            connection.outbound.removeFirst(position)
        default:
            precondition(connection.rejectRequest(block), "queued block not rejected")
        }
        queued.removeAll { $0 == block }
    }

    /// Sends what the connection queued.
    mutating func flush() {
        send(connection.outbound)
        connection.outbound.removeAll()
    }

    /// Delivers our bytes to the peer's decoder: they must be a valid stream, our handshake first (the
    /// decoder expects one), our availability the first message after it (BEP 6 requires one), and no
    /// message of an extension the peer did not negotiate (we would disconnect a peer for that).
    private mutating func send(_ bytes: [UInt8]) {
        sentByteCount += bytes.count
        let negotiated = connection.negotiated
        var messageCount = peerMessageCount
        do {
            try peerDecoder.feed(bytes.span) { event in
                var availability = false
                switch event {
                case .handshake:
                    return
                case .bitfield:
                    availability = true
                case .message(let message):
                    if case .haveAll = message { availability = true }
                    if case .haveNone = message { availability = true }
                    if let id = message.id {
                        precondition(
                            !id.needsFastExtension || negotiated.contains(.fastExtension),
                            "\(id) without BEP 6")
                        precondition(id != .port || negotiated.contains(.dht), "port without the DHT bit")
                    }
                case .extended:
                    precondition(negotiated.contains(.extensionProtocol), "extended without BEP 10")
                case .blockData, .unknown:
                    break
                }
                precondition(!availability || messageCount == 0, "availability after other messages")
                precondition(
                    availability || messageCount > 0 || !negotiated.contains(.fastExtension),
                    "BEP 6: availability is not our first message")
                messageCount += 1
            }
        } catch {
            preconditionFailure("the peer cannot decode what we sent: \(error)")
        }
        peerMessageCount = messageCount
    }

    // MARK: - The model

    private mutating func apply(_ event: Event) {
        if case .handshakeCompleted = event {
            precondition(!handshakeReported, "a second handshake")
            handshakeReported = true
            return
        }
        precondition(
            handshakeReported && connection.isEstablished || closed != nil, "an event before the handshake")
        switch event {
        case .handshakeCompleted, .other, .extended:
            break
        case .peerBitfield(let byteCount):
            precondition(
                byteCount == PieceSet.wireByteCount(pieceCount: geometry.pieceCount), "bitfield size")
        case .peerHasAll:
            precondition(connection.peerPieces.isComplete, "have-all not recorded")
        case .peerHas(let piece), .piece(let piece):
            precondition(piece.int < geometry.pieceCount, "piece out of range")
        case .requestReceived(let block):
            precondition(
                geometry.isValid(block) && connection.localPieces.contains(block.piece), "bad request")
            precondition(!queued.contains(block), "a request reported twice")
            precondition(queued.count < options.maximumIncomingRequests, "request queue over its limit")
            queued.append(block)
        case .cancelReceived(let block):
            precondition(queued.contains(block), "a cancel for a request not queued")
            queued.removeAll { $0 == block }
        case .requestRejected(let block):
            precondition(requested.contains(block), "a reject for a request not pending")
            requested.removeAll { $0 == block }
            abandoned.append(block)
        case .blockData(let block, let offset, let byteCount):
            if offset == 0 {
                precondition(requested.contains(block), "block data for a request not pending")
                requested.removeAll { $0 == block }
                arriving[block] = 0
            }
            precondition(arriving[block] == offset, "block data out of order")
            precondition(
                byteCount > 0 && offset + byteCount <= Int(block.length), "block data outside its block")
            arriving[block] = offset + byteCount == Int(block.length) ? nil : offset + byteCount
        }
    }

    func checkModel() {
        precondition(connection.pendingRequestCount == requested.count, "pending count differs")
        precondition(requested.allSatisfy { connection.isPending($0) }, "a pending request forgotten")
        precondition(
            connection.abandonedRequestCount >= 0
                && connection.pendingRequestCount + connection.abandonedRequestCount
                    <= options.maximumOutgoingRequests,
            "outgoing requests over their limit")
        precondition(connection.queuedIncomingRequestCount == queued.count, "queued count differs")
        precondition(
            queued.allSatisfy { connection.isIncomingRequestQueued($0) }, "a queued request forgotten")
        if !connection.isEstablished && closed == nil {
            let pending = sentByteCount + connection.outbound.count
            precondition(
                pending == 0 || pending == Handshake.byteCount, "sent more than a handshake too early")
        }
    }

    /// Once closed, the connection rethrows its reason and every command does nothing.
    mutating func checkClosed(_ reason: DisconnectReason) {
        precondition(connection.phase == .closed && connection.closeReason == reason, "closed without record")
        precondition(!reason.description.isEmpty, "a reason without a description")
        do {
            try connection.receive([0, 0, 0, 0].span, now: now) { _ in
                preconditionFailure("an event after close")
            }
            preconditionFailure("a closed connection accepted bytes")
        } catch {
            precondition(error == reason, "a closed connection changed its reason")
        }
        do {
            try connection.timerTick(now: now.adding(seconds: 1000))
            preconditionFailure("a closed connection ran its timers")
        } catch {
            precondition(error == reason, "a closed connection changed its reason")
        }
        let before = connection.outbound.count
        precondition(
            !connection.sendInterested() && !connection.unchoke() && !connection.choke()
                && !connection.sendPort(1) && requested.allSatisfy { !connection.cancel($0) }
                && queued.allSatisfy { !connection.rejectRequest($0) }, "a closed connection took a command")
        if geometry.pieceCount > 0 {
            precondition(
                !connection.request(geometry.block(0, of: PieceIndex(0))), "a closed connection requested")
        }
        precondition(connection.outbound.count == before, "a closed connection queued bytes")
    }

    // MARK: - Fields

    /// A piece index: usually inside the torrent, sometimes any byte.
    private func piece(_ input: inout FuzzInput) -> PieceIndex {
        let byte = input.byte()
        guard byte & 0x80 == 0, geometry.pieceCount > 0 else { return PieceIndex(UInt32(byte & 0x7f)) }
        return PieceIndex(Int(byte) % geometry.pieceCount)
    }

    /// Raw fields, a standard block, one of our pending requests, or one of the peer's queued ones.
    private func block(_ input: inout FuzzInput) -> BlockRange {
        let choice = input.byte()
        switch choice & 3 {
        case 1 where geometry.pieceCount > 0: return validBlock(&input)
        case 2 where !requested.isEmpty: return requested[Int(choice >> 2) % requested.count]
        case 3 where !queued.isEmpty: return queued[Int(choice >> 2) % queued.count]
        default:
            return BlockRange(
                piece: piece(&input), offset: UInt32(input.uint16()), length: UInt32(input.uint16()))
        }
    }

    /// A standard block, or (rarely) another valid range inside a piece.
    private func validBlock(_ input: inout FuzzInput) -> BlockRange {
        let piece = PieceIndex(Int(input.byte()) % geometry.pieceCount)
        let choice = input.byte()
        let standard = geometry.block(Int(choice & 0x7f) % geometry.blockCount(of: piece), of: piece)
        guard choice & 0x80 != 0 else { return standard }
        let length = 1 + UInt32(input.byte()) % standard.length
        return BlockRange(piece: piece, offset: standard.offset + standard.length - length, length: length)
    }

    static func payload(_ block: BlockRange) -> [UInt8] {
        (0..<Int(block.length)).map { UInt8(truncatingIfNeeded: $0 &+ Int(block.offset)) }
    }
}

private func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
}
