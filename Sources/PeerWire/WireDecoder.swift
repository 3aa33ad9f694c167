import TorrentModel

/// Limits on what a peer may send, beyond those the torrent itself sets (a bitfield is exactly
/// `ceil(pieceCount / 8)` bytes; a block is at most `PieceGeometry.maximumRequestLength`).
public struct WireLimits: Hashable, Sendable {
    /// The longest `piece` message: id, index and begin (9 bytes) and the largest block a request may name.
    public static let maximumPieceMessageLength = 9 + Int(PieceGeometry.maximumRequestLength)

    /// The largest BEP 10 payload (after the extended id). Extended messages are buffered whole, so this
    /// bounds the decoder's memory; ut_metadata pieces are 16 KiB, handshakes a few hundred bytes.
    public var maximumExtendedPayloadBytes: Int
    /// The largest message with an id we do not know. These are skipped as they stream past, never
    /// buffered, so the limit only bounds how long a peer can make us read nonsense.
    public var maximumUnknownMessageBytes: Int

    public init(maximumExtendedPayloadBytes: Int = 1 << 20, maximumUnknownMessageBytes: Int = 1 << 20) {
        precondition(maximumExtendedPayloadBytes >= 0 && maximumUnknownMessageBytes >= 0, "negative limit")
        self.maximumExtendedPayloadBytes = maximumExtendedPayloadBytes
        self.maximumUnknownMessageBytes = maximumUnknownMessageBytes
    }
}

/// What the decoder found in the bytes it was fed. Byte ranges are views of the caller's chunk (or of
/// the decoder's small-message buffer) that live only for the duration of the callback.
public enum WireEvent: ~Escapable {
    /// The peer's handshake (only when the decoder was created expecting one).
    case handshake(Handshake)
    /// A fixed-size message, validated against the torrent.
    case message(PeerMessage)
    /// A bitfield of exactly `ceil(pieceCount / 8)` bytes with its spare bits zero.
    case bitfield(Span<UInt8>)
    /// Part of a `piece` message's payload: `bytes` belong at `offsetInBlock` within `block`. A block
    /// arrives as one or more of these in order; the last one ends at `block.length`.
    case blockData(block: BlockRange, offsetInBlock: Int, bytes: Span<UInt8>)
    /// A BEP 10 message: the extended id (0 is the extension handshake) and the raw payload.
    case extended(id: UInt8, payload: Span<UInt8>)
    /// A message with an id we do not know; its `length` bytes (id included) are skipped.
    case unknown(id: UInt8, length: Int)
}

/// An incremental framing decoder for the peer wire protocol.
///
/// Feed it chunks exactly as they come from the socket; message boundaries may fall anywhere, including
/// inside a length prefix. `piece` payloads are never copied: they come back as `blockData` views of the
/// chunk being fed. Other messages are parsed in place when they lie whole inside a chunk, and gathered
/// in a small internal buffer (bounded by `WireLimits` and the torrent's bitfield size) when they do not.
/// Nothing is allocated per message once that buffer has grown to the largest message seen.
///
/// Invariants:
/// - `scratch` holds only the bytes of the unit being gathered (handshake, length prefix, piece header or
///   message body), and never more than that unit's validated length.
/// - Every length is checked against its limit as soon as the message id is known, before any byte of
///   the body is stored.
/// - After an error the decoder stays failed and rethrows that error.
public struct WireDecoder: Sendable {
    /// Scratch capacity kept between messages; a larger buffer (after a big extended message) is freed.
    private static let retainedScratchBytes = 64 * 1024

    public let geometry: PieceGeometry
    public let limits: WireLimits
    private let bitfieldByteCount: Int
    private var phase: Phase
    private var scratch: [UInt8] = []
    private var failure: DisconnectReason?

    private enum Phase {
        case handshake
        case lengthPrefix
        case messageID(length: Int)
        /// The body after the id, `byteCount` long.
        case body(id: MessageID, byteCount: Int)
        /// A piece message's index and begin (8 bytes); `length` is the whole message length.
        case pieceHeader(length: Int)
        case pieceData(block: BlockRange, deliveredBytes: Int)
        case skipping(remainingBytes: Int)
    }

    /// - Parameter expectsHandshake: whether the stream starts with a BEP 3 handshake.
    public init(geometry: PieceGeometry, limits: WireLimits = WireLimits(), expectsHandshake: Bool = true) {
        self.geometry = geometry
        self.limits = limits
        self.bitfieldByteCount = PieceSet.wireByteCount(pieceCount: geometry.pieceCount)
        self.phase = expectsHandshake ? .handshake : .lengthPrefix
        scratch.reserveCapacity(Handshake.byteCount)
    }

    /// Whether the decoder is between messages (no partial message is pending).
    public var isAtMessageBoundary: Bool {
        if case .lengthPrefix = phase { return scratch.isEmpty }
        return false
    }

    /// Decodes `chunk`, calling `onEvent` for each event in stream order.
    ///
    /// An error thrown by `onEvent` stops decoding and is rethrown; the decoder then stays failed, as it
    /// does after a protocol error of its own.
    public mutating func feed(
        _ chunk: Span<UInt8>, onEvent: (borrowing WireEvent) throws(DisconnectReason) -> Void
    ) throws(DisconnectReason) {
        if let failure { throw failure }
        do {
            try decode(chunk, onEvent: onEvent)
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func decode(
        _ chunk: Span<UInt8>, onEvent: (borrowing WireEvent) throws(DisconnectReason) -> Void
    ) throws(DisconnectReason) {
        var position = 0
        while position < chunk.count {
            let available = chunk.count - position
            switch phase {
            case .handshake:
                let take = min(Handshake.byteCount - scratch.count, available)
                scratch.append(span: chunk.extracting(position..<position + take))
                position += take
                try Handshake.checkPrefix(scratch.span)
                if scratch.count == Handshake.byteCount {
                    let handshake = try Handshake(parsing: scratch.span)
                    scratch.removeAll(keepingCapacity: true)
                    phase = .lengthPrefix
                    try onEvent(.handshake(handshake))
                }

            case .lengthPrefix:
                let length: UInt32
                if scratch.isEmpty && available >= 4 {
                    length = chunk.readBigEndianUInt32(at: position)
                    position += 4
                } else {
                    let take = min(4 - scratch.count, available)
                    scratch.append(span: chunk.extracting(position..<position + take))
                    position += take
                    guard scratch.count == 4 else { continue }
                    length = scratch.span.readBigEndianUInt32(at: 0)
                    scratch.removeAll(keepingCapacity: true)
                }
                if length == 0 {
                    try onEvent(.message(.keepAlive))
                } else {
                    phase = .messageID(length: Int(length))
                }

            case .messageID(let length):
                let id = chunk[position]
                position += 1
                try beginMessage(id: id, length: length, onEvent: onEvent)
                if case .body(let known, 0) = phase {
                    // Choke, unchoke and friends have no body: deliver them now, not on the next chunk.
                    phase = .lengthPrefix
                    try Self.deliver(known, body: chunk.extracting(position..<position), geometry, onEvent)
                }

            case .body(let id, let byteCount):
                if scratch.isEmpty && available >= byteCount {
                    phase = .lengthPrefix
                    let body = chunk.extracting(position..<position + byteCount)
                    position += byteCount
                    try Self.deliver(id, body: body, geometry, onEvent)
                } else {
                    let take = min(byteCount - scratch.count, available)
                    scratch.append(span: chunk.extracting(position..<position + take))
                    position += take
                    guard scratch.count == byteCount else { continue }
                    phase = .lengthPrefix
                    do {
                        let body = scratch.span
                        try Self.deliver(id, body: body, geometry, onEvent)
                    }
                    releaseScratch()
                }

            case .pieceHeader(let length):
                let index: UInt32
                let offset: UInt32
                if scratch.isEmpty && available >= 8 {
                    index = chunk.readBigEndianUInt32(at: position)
                    offset = chunk.readBigEndianUInt32(at: position + 4)
                    position += 8
                } else {
                    let take = min(8 - scratch.count, available)
                    scratch.append(span: chunk.extracting(position..<position + take))
                    position += take
                    guard scratch.count == 8 else { continue }
                    index = scratch.span.readBigEndianUInt32(at: 0)
                    offset = scratch.span.readBigEndianUInt32(at: 4)
                    scratch.removeAll(keepingCapacity: true)
                }
                let block = try checkedBlock(.piece, index: index, offset: offset, length: UInt32(length - 9))
                phase = .pieceData(block: block, deliveredBytes: 0)

            case .pieceData(let block, let delivered):
                let take = min(Int(block.length) - delivered, available)
                let done = delivered + take == Int(block.length)
                phase = done ? .lengthPrefix : .pieceData(block: block, deliveredBytes: delivered + take)
                let bytes = chunk.extracting(position..<position + take)
                position += take
                try onEvent(.blockData(block: block, offsetInBlock: delivered, bytes: bytes))

            case .skipping(let remaining):
                let take = min(remaining, available)
                position += take
                phase = take == remaining ? .lengthPrefix : .skipping(remainingBytes: remaining - take)
            }
        }
    }

    /// Checks a message's length against its id and moves to the phase that reads its body.
    private mutating func beginMessage(
        id rawID: UInt8, length: Int, onEvent: (borrowing WireEvent) throws(DisconnectReason) -> Void
    ) throws(DisconnectReason) {
        guard let id = MessageID(rawValue: rawID) else {
            guard length - 1 <= limits.maximumUnknownMessageBytes else {
                throw .messageTooLong(id: rawID, length: length, limit: 1 + limits.maximumUnknownMessageBytes)
            }
            phase = length == 1 ? .lengthPrefix : .skipping(remainingBytes: length - 1)
            try onEvent(.unknown(id: rawID, length: length))
            return
        }
        let expected: Int
        switch id {
        case .choke, .unchoke, .interested, .notInterested, .haveAll, .haveNone: expected = 1
        case .have, .suggestPiece, .allowedFast: expected = 5
        case .request, .cancel, .rejectRequest: expected = 13
        case .port: expected = 3
        case .hashRequest: expected = 1 + HashRequest.headerByteCount
        case .bitfield: expected = 1 + bitfieldByteCount
        case .piece:
            guard length >= 9 else { throw .wrongMessageLength(id: id, length: length, expected: 9) }
            guard length <= WireLimits.maximumPieceMessageLength else {
                throw .messageTooLong(id: rawID, length: length, limit: WireLimits.maximumPieceMessageLength)
            }
            phase = .pieceHeader(length: length)
            return
        case .extended:
            guard length >= 2 else { throw .wrongMessageLength(id: id, length: length, expected: 2) }
            guard length - 2 <= limits.maximumExtendedPayloadBytes else {
                throw .messageTooLong(
                    id: rawID, length: length, limit: 2 + limits.maximumExtendedPayloadBytes)
            }
            phase = .body(id: id, byteCount: length - 1)
            return
        }
        guard length == expected else {
            throw .wrongMessageLength(id: id, length: length, expected: expected)
        }
        phase = .body(id: id, byteCount: length - 1)
    }

    private func checkedBlock(
        _ id: MessageID, index: UInt32, offset: UInt32, length: UInt32
    )
        throws(DisconnectReason) -> BlockRange
    {
        try Self.checkedBlock(id, index: index, offset: offset, length: length, geometry)
    }

    private static func checkedBlock(
        _ id: MessageID, index: UInt32, offset: UInt32, length: UInt32, _ geometry: PieceGeometry
    ) throws(DisconnectReason) -> BlockRange {
        guard let piece = geometry.checkedPiece(index) else {
            throw .pieceOutOfRange(id: id, index: index, pieceCount: geometry.pieceCount)
        }
        let block = BlockRange(piece: piece, offset: offset, length: length)
        guard geometry.isValid(block) else {
            throw .invalidBlock(id: id, piece: index, offset: offset, length: length)
        }
        return block
    }

    /// Parses the body of a buffered message (its length already checked) and reports it.
    private static func deliver(
        _ id: MessageID, body: Span<UInt8>, _ geometry: PieceGeometry,
        _ onEvent: (borrowing WireEvent) throws(DisconnectReason) -> Void
    ) throws(DisconnectReason) {
        switch id {
        case .choke: try onEvent(.message(.choke))
        case .unchoke: try onEvent(.message(.unchoke))
        case .interested: try onEvent(.message(.interested))
        case .notInterested: try onEvent(.message(.notInterested))
        case .haveAll: try onEvent(.message(.haveAll))
        case .haveNone: try onEvent(.message(.haveNone))
        case .have, .suggestPiece, .allowedFast:
            let index = body.readBigEndianUInt32(at: 0)
            guard let piece = geometry.checkedPiece(index) else {
                throw .pieceOutOfRange(id: id, index: index, pieceCount: geometry.pieceCount)
            }
            switch id {
            case .have: try onEvent(.message(.have(piece)))
            case .suggestPiece: try onEvent(.message(.suggestPiece(piece)))
            default: try onEvent(.message(.allowedFast(piece)))
            }
        case .request, .cancel, .rejectRequest:
            let block = try checkedBlock(
                id, index: body.readBigEndianUInt32(at: 0), offset: body.readBigEndianUInt32(at: 4),
                length: body.readBigEndianUInt32(at: 8), geometry)
            switch id {
            case .request: try onEvent(.message(.request(block)))
            case .cancel: try onEvent(.message(.cancel(block)))
            default: try onEvent(.message(.rejectRequest(block)))
            }
        case .port:
            try onEvent(.message(.port(body.readBigEndianUInt16(at: 0))))
        case .hashRequest:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(body.count)
            for i in body.indices { bytes.append(body[i]) }
            guard let request = HashRequest(header: bytes[...]) else {
                throw .wrongMessageLength(
                    id: id, length: body.count + 1, expected: 1 + HashRequest.headerByteCount)
            }
            try onEvent(.message(.hashRequest(request)))
        case .bitfield:
            guard PieceSet.spareBitsAreZero(body, pieceCount: geometry.pieceCount) else {
                throw .bitfieldSpareBitsSet(pieceCount: geometry.pieceCount)
            }
            try onEvent(.bitfield(body))
        case .extended:
            try onEvent(.extended(id: body[0], payload: body.extracting(droppingFirst: 1)))
        case .piece:
            preconditionFailure("piece payloads are streamed, never buffered")
        }
    }

    /// Empties the scratch buffer, giving back memory a large message made it grow to.
    private mutating func releaseScratch() {
        if scratch.capacity > Self.retainedScratchBytes {
            scratch = []
            scratch.reserveCapacity(Handshake.byteCount)
        } else {
            scratch.removeAll(keepingCapacity: true)
        }
    }
}
