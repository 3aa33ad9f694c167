import TorrentModel

/// The one-byte message ids of BEP 3, BEP 5, BEP 6 and BEP 10.
public enum MessageID: UInt8, Hashable, Sendable, CaseIterable {
    case choke = 0
    case unchoke = 1
    case interested = 2
    case notInterested = 3
    case have = 4
    case bitfield = 5
    case request = 6
    case piece = 7
    case cancel = 8
    /// BEP 5: the sender's DHT port.
    case port = 9
    /// BEP 6.
    case suggestPiece = 13
    case haveAll = 14
    case haveNone = 15
    case rejectRequest = 16
    case allowedFast = 17
    /// BEP 10: an extended message; the first payload byte is the extended id.
    case extended = 20
    /// BEP 52: a request for hashes of a file's merkle tree.
    case hashRequest = 21

    /// Messages only valid when both sides set the fast extension bit.
    public var needsFastExtension: Bool {
        switch self {
        case .suggestPiece, .haveAll, .haveNone, .rejectRequest, .allowedFast: true
        default: false
        }
    }
}

/// A message whose encoding has a fixed size: every message except `bitfield`, `piece` and `extended`,
/// whose payloads are byte ranges (see `WireEncoder`).
///
/// The decoder delivers these already validated: piece indices and blocks lie inside the torrent.
public enum PeerMessage: Hashable, Sendable {
    case keepAlive
    case choke
    case unchoke
    case interested
    case notInterested
    case have(PieceIndex)
    case request(BlockRange)
    case cancel(BlockRange)
    /// BEP 5.
    case port(UInt16)
    /// BEP 6.
    case suggestPiece(PieceIndex)
    case haveAll
    case haveNone
    case rejectRequest(BlockRange)
    case allowedFast(PieceIndex)

    /// BEP 52: a request for hashes of a v2 file's tree (answered with `hashes` or `hash reject`).
    case hashRequest(HashRequest)

    /// The message id, or nil for a keep-alive (which has none).
    public var id: MessageID? {
        switch self {
        case .keepAlive: nil
        case .choke: .choke
        case .unchoke: .unchoke
        case .interested: .interested
        case .notInterested: .notInterested
        case .have: .have
        case .request: .request
        case .cancel: .cancel
        case .port: .port
        case .suggestPiece: .suggestPiece
        case .haveAll: .haveAll
        case .haveNone: .haveNone
        case .rejectRequest: .rejectRequest
        case .allowedFast: .allowedFast
        case .hashRequest: .hashRequest
        }
    }

    /// Appends the message, length prefix included, to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .keepAlive:
            buffer.appendBigEndian(UInt32(0))
        case .choke, .unchoke, .interested, .notInterested, .haveAll, .haveNone:
            buffer.appendBigEndian(UInt32(1))
            buffer.append(id?.rawValue ?? 0)
        case .have(let piece), .suggestPiece(let piece), .allowedFast(let piece):
            buffer.appendBigEndian(UInt32(5))
            buffer.append(id?.rawValue ?? 0)
            buffer.appendBigEndian(piece.value)
        case .request(let block), .cancel(let block), .rejectRequest(let block):
            buffer.appendBigEndian(UInt32(13))
            buffer.append(id?.rawValue ?? 0)
            buffer.appendBigEndian(block.piece.value)
            buffer.appendBigEndian(block.offset)
            buffer.appendBigEndian(block.length)
        case .port(let port):
            buffer.appendBigEndian(UInt32(3))
            buffer.append(MessageID.port.rawValue)
            buffer.appendBigEndian(port)
        case .hashRequest(let request):
            buffer += request.encodedRequest()
        }
    }
}

/// Encoders for the messages that carry byte ranges. Each appends one whole message to `buffer`; with
/// enough reserved capacity nothing is allocated.
public enum WireEncoder {
    /// The bytes before a `piece` message's payload: length, id, index and begin.
    public static let pieceHeaderByteCount = 13

    /// `<len=1+X><5><bitfield>`.
    public static func appendBitfield(_ bitfield: Span<UInt8>, into buffer: inout [UInt8]) {
        buffer.appendBigEndian(UInt32(1 + bitfield.count))
        buffer.append(MessageID.bitfield.rawValue)
        buffer.append(span: bitfield)
    }

    /// `<len=9+X><7><index><begin>` without the payload, for a sender that writes the payload from its
    /// own buffer right after these 13 bytes.
    public static func appendPieceHeader(for block: BlockRange, into buffer: inout [UInt8]) {
        buffer.appendBigEndian(9 + block.length)
        buffer.append(MessageID.piece.rawValue)
        buffer.appendBigEndian(block.piece.value)
        buffer.appendBigEndian(block.offset)
    }

    /// `<len=9+X><7><index><begin><block>`. `payload` must be exactly `block.length` bytes.
    public static func appendPiece(_ block: BlockRange, payload: Span<UInt8>, into buffer: inout [UInt8]) {
        precondition(payload.count == Int(block.length), "a piece payload must be exactly its block's length")
        appendPieceHeader(for: block, into: &buffer)
        buffer.append(span: payload)
    }

    /// BEP 10: `<len=2+X><20><extended id><payload>`; id 0 is the extension handshake.
    public static func appendExtended(id: UInt8, payload: Span<UInt8>, into buffer: inout [UInt8]) {
        buffer.appendBigEndian(UInt32(2 + payload.count))
        buffer.append(MessageID.extended.rawValue)
        buffer.append(id)
        buffer.append(span: payload)
    }
}
