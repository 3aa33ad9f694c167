import TorrentModel

/// Why a peer connection must end. Every way a peer can break the protocol has a case here, with the
/// values needed to understand it in a log; none of them is a crash.
public enum DisconnectReason: Error, Hashable, Sendable, CustomStringConvertible {
    // Framing (WireDecoder).
    /// The handshake is not `\x13BitTorrent protocol...`.
    case malformedHandshake(detail: String)
    /// A message is longer than its limit (or than the torrent allows, for a bitfield).
    case messageTooLong(id: UInt8, length: Int, limit: Int)
    /// A fixed-size message has the wrong length.
    case wrongMessageLength(id: MessageID, length: Int, expected: Int)
    /// A message names a piece the torrent does not have.
    case pieceOutOfRange(id: MessageID, index: UInt32, pieceCount: Int)
    /// A request, cancel, reject or piece names a block outside its piece or over the request limit.
    case invalidBlock(id: MessageID, piece: UInt32, offset: UInt32, length: UInt32)
    /// A bitfield sets bits past the last piece.
    case bitfieldSpareBitsSet(pieceCount: Int)

    // Handshake (PeerConnection).
    case infoHashMismatch(expected: InfoHash, received: InfoHash)
    case peerIDMismatch(expected: PeerID, received: PeerID)
    /// The peer id is our own: we dialled ourselves.
    case connectedToSelf
    case handshakeTimedOut(waitedNanoseconds: UInt64)

    // Protocol rules (PeerConnection).
    /// A bitfield, have-all or have-none that is not the first message, or a second one.
    case misplacedAvailability(id: MessageID)
    /// A BEP 6 message from a peer with which the fast extension was not negotiated.
    case fastExtensionNotNegotiated(id: MessageID)
    /// A BEP 10 message from a peer with which the extension protocol was not negotiated.
    case extensionProtocolNotNegotiated
    /// A piece we never requested (BEP 3 and BEP 6: the receiver must close the connection).
    case unrequestedBlock(BlockRange)
    /// A reject for a request we never sent (BEP 6: should close).
    case unrequestedReject(BlockRange)
    /// More requests than our advertised queue, or too many we had to refuse in a row.
    case requestFlood(count: Int, limit: Int)
    /// The peer keeps making us queue bytes (rejects, keep-alives) but does not read what we send.
    case peerNotReading(queuedBytes: Int, limit: Int)
    /// Nothing received for longer than the silence timeout.
    case peerSilent(silentNanoseconds: UInt64, limitNanoseconds: UInt64)

    public var description: String {
        switch self {
        case .malformedHandshake(let detail): "malformed handshake: \(detail)"
        case .messageTooLong(let id, let length, let limit):
            "message id \(id) is \(length) bytes long, limit \(limit)"
        case .wrongMessageLength(let id, let length, let expected):
            "\(id) message is \(length) bytes long, expected \(expected)"
        case .pieceOutOfRange(let id, let index, let pieceCount):
            "\(id) names piece \(index) of a torrent with \(pieceCount) pieces"
        case .invalidBlock(let id, let piece, let offset, let length):
            "\(id) names an invalid block: piece \(piece), offset \(offset), length \(length)"
        case .bitfieldSpareBitsSet(let pieceCount):
            "bitfield sets bits past piece \(pieceCount)"
        case .infoHashMismatch(let expected, let received): "infohash \(received), expected \(expected)"
        case .peerIDMismatch(let expected, let received): "peer id \(received), expected \(expected)"
        case .connectedToSelf: "connected to ourselves"
        case .handshakeTimedOut(let waited): "no handshake after \(waited) ns"
        case .misplacedAvailability(let id): "\(id) is not the first message after the handshake"
        case .fastExtensionNotNegotiated(let id): "\(id) without the fast extension"
        case .extensionProtocolNotNegotiated: "extended message without the extension protocol"
        case .unrequestedBlock(let block): "received \(block), which was not requested"
        case .unrequestedReject(let block): "reject for \(block), which was not requested"
        case .requestFlood(let count, let limit): "\(count) requests, limit \(limit)"
        case .peerNotReading(let queued, let limit): "\(queued) bytes unsent, limit \(limit)"
        case .peerSilent(let silent, let limit): "silent for \(silent) ns, limit \(limit) ns"
        }
    }
}
