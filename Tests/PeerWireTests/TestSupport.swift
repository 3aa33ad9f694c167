import PeerWire
import Testing
import TorrentModel

/// Escapable copies of decoder events, so tests can collect and compare them.
enum DecodedEvent: Equatable, CustomStringConvertible {
    case handshake(Handshake)
    case message(PeerMessage)
    case bitfield([UInt8])
    case block(BlockRange, offsetInBlock: Int, [UInt8])
    case extended(id: UInt8, [UInt8])
    case unknown(id: UInt8, length: Int)

    init(_ event: borrowing WireEvent) {
        switch event {
        case .handshake(let handshake): self = .handshake(handshake)
        case .message(let message): self = .message(message)
        case .bitfield(let bytes): self = .bitfield(bytes.array)
        case .blockData(let block, let offset, let bytes):
            self = .block(block, offsetInBlock: offset, bytes.array)
        case .extended(let id, let payload): self = .extended(id: id, payload.array)
        case .unknown(let id, let length): self = .unknown(id: id, length: length)
        }
    }

    var description: String {
        switch self {
        case .handshake(let h): "handshake(\(h.peerID))"
        case .message(let m): "\(m)"
        case .bitfield(let b): "bitfield(\(Hex.encode(b)))"
        case .block(let block, let offset, let bytes): "block(\(block), at \(offset), \(bytes.count) bytes)"
        case .extended(let id, let payload): "extended(\(id), \(payload.count) bytes)"
        case .unknown(let id, let length): "unknown(\(id), \(length))"
        }
    }
}

/// Escapable copies of connection events.
enum RecordedPeerEvent: Equatable {
    case handshakeCompleted(peerID: PeerID, negotiated: ReservedBits)
    case peerBitfield([UInt8])
    case peerHasAll
    case peerHasNone
    case peerHas(PieceIndex)
    case peerChokedUs
    case peerUnchokedUs
    case peerInterested
    case peerNotInterested
    case requestReceived(BlockRange)
    case cancelReceived(BlockRange)
    case block(BlockRange, offsetInBlock: Int, [UInt8])
    case requestRejected(BlockRange)
    case suggestedPiece(PieceIndex)
    case allowedFast(PieceIndex)
    case extended(id: UInt8, [UInt8])
    case dhtPort(UInt16)
    case hashRequested(HashRequest)

    init(_ event: borrowing PeerEvent) {
        switch event {
        case .handshakeCompleted(let peer, let negotiated):
            self = .handshakeCompleted(peerID: peer.peerID, negotiated: negotiated)
        case .peerBitfield(let bytes): self = .peerBitfield(bytes.array)
        case .peerHasAll: self = .peerHasAll
        case .peerHasNone: self = .peerHasNone
        case .peerHas(let piece): self = .peerHas(piece)
        case .peerChokedUs: self = .peerChokedUs
        case .peerUnchokedUs: self = .peerUnchokedUs
        case .peerInterested: self = .peerInterested
        case .peerNotInterested: self = .peerNotInterested
        case .requestReceived(let block): self = .requestReceived(block)
        case .cancelReceived(let block): self = .cancelReceived(block)
        case .blockData(let block, let offset, let bytes):
            self = .block(block, offsetInBlock: offset, bytes.array)
        case .requestRejected(let block): self = .requestRejected(block)
        case .suggestedPiece(let piece): self = .suggestedPiece(piece)
        case .allowedFast(let piece): self = .allowedFast(piece)
        case .extended(let id, let payload): self = .extended(id: id, payload.array)
        case .dhtPort(let port): self = .dhtPort(port)
        case .hashRequested(let request): self = .hashRequested(request)
        }
    }
}

extension Span where Element == UInt8 {
    var array: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for i in 0..<count { out.append(self[i]) }
        return out
    }
}

/// Merges consecutive pieces of one block into one event, so that decodings of the same stream cut into
/// different chunks can be compared.
func coalesced(_ events: [DecodedEvent]) -> [DecodedEvent] {
    var out: [DecodedEvent] = []
    for event in events {
        if case .block(let block, let offset, let bytes) = event,
            case .block(let lastBlock, let lastOffset, let lastBytes)? = out.last,
            lastBlock == block, lastOffset + lastBytes.count == offset
        {
            out[out.count - 1] = .block(block, offsetInBlock: lastOffset, lastBytes + bytes)
        } else {
            out.append(event)
        }
    }
    return out
}

/// Decodes `stream` cut into chunks of the given sizes (the last chunk takes the rest).
func decode(
    _ stream: [UInt8], chunkSizes: [Int], geometry: PieceGeometry, expectsHandshake: Bool = false,
    limits: WireLimits = WireLimits()
) -> (events: [DecodedEvent], error: DisconnectReason?) {
    var decoder = WireDecoder(geometry: geometry, limits: limits, expectsHandshake: expectsHandshake)
    var events: [DecodedEvent] = []
    var start = 0
    var sizes = chunkSizes[...]
    while start < stream.count {
        let size = min(sizes.popFirst() ?? stream.count, stream.count - start)
        let chunk = Array(stream[start..<start + size])
        start += size
        do {
            try decoder.feed(chunk.span) { events.append(DecodedEvent($0)) }
        } catch {
            return (events, error)
        }
    }
    return (events, nil)
}

/// Random chunk sizes that add up to at least `total`, mostly small so boundaries land everywhere.
func randomChunkSizes(total: Int, using random: inout SeededRandom) -> [Int] {
    var sizes: [Int] = []
    var sum = 0
    while sum < total {
        let size =
            Bool.random(using: &random)
            ? Int.random(in: 1...7, using: &random) : Int.random(in: 1...40_000, using: &random)
        sizes.append(size)
        sum += size
    }
    return sizes
}

func bytes(_ hex: String) -> [UInt8] {
    Hex.decode(hex.filter { !$0.isWhitespace }) ?? []
}

/// An identifier of any kind (infohash, peer id) of twenty copies of `fill`.
func id20<Kind>(_ fill: UInt8) -> Bytes20<Kind> { Bytes20([UInt8](repeating: fill, count: 20))! }

func seconds(_ value: UInt64) -> Instant { Instant(nanoseconds: value * 1_000_000_000) }

/// Five pieces of 32 KiB (two blocks each) and a short last one of 10000 bytes: six pieces, so the
/// bitfield is one byte whose low two bits are spare.
let testGeometry = PieceGeometry(totalLength: 5 * 32768 + 10000, pieceLength: 32768)

/// The torrent's content, a deterministic pattern.
func testContent(_ geometry: PieceGeometry = testGeometry) -> [UInt8] {
    (0..<Int(geometry.totalLength)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
}

func payload(of block: BlockRange, in content: [UInt8], geometry: PieceGeometry = testGeometry) -> [UInt8] {
    let start = Int(geometry.offset(of: block.piece)) + Int(block.offset)
    return Array(content[start..<start + Int(block.length)])
}

let localInfoHash: InfoHash = id20(0xaa)
let ourPeerID: PeerID = id20(0x01)
let remotePeerID: PeerID = id20(0x02)

extension PeerConnection {
    /// Feeds bytes and returns the events; rethrows the disconnect reason.
    mutating func feed(
        _ input: [UInt8], at now: Instant = seconds(1)
    ) throws(DisconnectReason)
        -> [RecordedPeerEvent]
    {
        var events: [RecordedPeerEvent] = []
        try receive(input.span, now: now) { events.append(RecordedPeerEvent($0)) }
        return events
    }

    /// Takes everything queued for sending.
    mutating func takeOutbound() -> [UInt8] {
        defer { outbound.removeAll() }
        return outbound
    }
}

/// Encodes messages the way a peer would send them.
func wire(_ messages: PeerMessage...) -> [UInt8] {
    var out: [UInt8] = []
    for message in messages { message.encode(into: &out) }
    return out
}

func handshakeBytes(
    reserved: ReservedBits, infoHash: InfoHash = localInfoHash, peerID: PeerID = remotePeerID
) -> [UInt8] {
    var out: [UInt8] = []
    Handshake(reserved: reserved, infoHash: infoHash, peerID: peerID).encode(into: &out)
    return out
}

func bitfieldMessage(_ bits: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    WireEncoder.appendBitfield(bits.span, into: &out)
    return out
}

func pieceMessage(_ block: BlockRange, _ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    WireEncoder.appendPiece(block, payload: data.span, into: &out)
    return out
}

/// A connection we initiated, past the handshake with a peer that set `peerReserved`, with the peer's
/// availability message fed (if any) and the outbound buffer emptied.
func establishedConnection(
    fast: Bool, localPieces: PieceSet = PieceSet(pieceCount: testGeometry.pieceCount),
    peerAvailability: [UInt8]? = nil, options: PeerConnectionOptions = PeerConnectionOptions()
) throws -> PeerConnection {
    var options = options
    options.reserved = fast ? [.fastExtension, .extensionProtocol] : [.extensionProtocol]
    var connection = PeerConnection(
        geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID, localPieces: localPieces,
        initiatedLocally: true, options: options)
    connection.start(now: seconds(0))
    _ = try connection.feed(handshakeBytes(reserved: [.fastExtension, .extensionProtocol]), at: seconds(0))
    if let peerAvailability { _ = try connection.feed(peerAvailability, at: seconds(0)) }
    _ = connection.takeOutbound()
    return connection
}

func fullBitfield(_ geometry: PieceGeometry = testGeometry) -> PieceSet {
    var bits = PieceSet(pieceCount: geometry.pieceCount)
    bits.insertAll()
    return bits
}

/// Runs `body`, returning the disconnect reason it throws (nil if it does not throw).
func disconnectReason(_ body: () throws -> Void) -> DisconnectReason? {
    do {
        try body()
        return nil
    } catch let reason as DisconnectReason {
        return reason
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}
