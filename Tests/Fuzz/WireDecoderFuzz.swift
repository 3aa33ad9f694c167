// libFuzzer harness for the peer-wire framing decoder. Built by run.sh, not by SwiftPM.
import PeerWire
import TorrentModel

/// Reads a configuration (torrent shape, whether a handshake comes first, tight or default limits) and
/// chunk sizes from the front of the input, and decodes the rest as a peer's byte stream twice: in one
/// chunk, and cut where the input says. Both must give the same events and the same error. The events,
/// re-encoded, must be exactly the bytes they came from, so no byte is lost, invented or consumed twice;
/// each must respect the torrent and the limits; each fixed-size message must decode from its own
/// encoding to itself; block payloads must be views of the chunk being fed; an error must name the
/// message where decoding stopped; a failed decoder must stay failed. The connection router's
/// handshake sniffing must agree with the decoder.
@_cdecl("LLVMFuzzerTestOneInput")
public func wireDecoderFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    let flags = input.byte()
    let setup = Setup(
        geometry: geometries[Int(flags & 7)], expectsHandshake: flags & 8 != 0,
        limits: flags & 16 != 0
            ? WireLimits(maximumExtendedPayloadBytes: 64, maximumUnknownMessageBytes: 16) : WireLimits())
    // Squared so that most chunks are a few bytes (boundaries everywhere) and some are large.
    let chunkSizes = (0..<Int(input.byte() % 8)).map { _ in
        let byte = Int(input.byte())
        return 1 + byte * byte / 32
    }
    let stream = input.rest()

    let whole = decode(stream, chunkSizes: [stream.count], setup)
    let chunked = decode(stream, chunkSizes: chunkSizes, setup)
    precondition(coalesced(whole.events) == coalesced(chunked.events), "chunking changed the events")
    precondition(whole.error == chunked.error, "chunking changed the error")
    precondition(whole.isAtMessageBoundary == chunked.isAtMessageBoundary, "chunking changed the boundary")

    let events = coalesced(whole.events)
    for event in events { check(event, setup) }
    let consumed = reencode(events, stream: stream)
    if let error = whole.error {
        check(error, at: consumed.count, in: stream, setup)
    } else {
        let handshakePending = setup.expectsHandshake && events.first.map { !$0.isHandshake } ?? true
        precondition(
            whole.isAtMessageBoundary
                == (consumed.isComplete && consumed.count == stream.count && !handshakePending),
            "the decoder's boundary does not match the bytes it consumed")
    }
    if setup.expectsHandshake { checkSniffing(stream, decoded: events.first, error: whole.error) }
    return 0
}

private struct Setup {
    let geometry: PieceGeometry
    let expectsHandshake: Bool
    let limits: WireLimits
}

/// No pieces (what a magnet link knows before its metadata), one byte, small pieces of tiny blocks with
/// a short last piece, a bitfield without spare bits, the unit tests' torrent, hundreds of pieces,
/// pieces larger than a request, and a bitfield too long for any input.
private let geometries = [
    PieceGeometry(totalLength: 0, pieceLength: 16384),
    PieceGeometry(totalLength: 1, pieceLength: 1),
    PieceGeometry(totalLength: 1000, pieceLength: 64, blockLength: 16),
    PieceGeometry(totalLength: 8 * 64, pieceLength: 64, blockLength: 16),
    PieceGeometry(totalLength: 5 * 32768 + 10000, pieceLength: 32768),
    PieceGeometry(totalLength: 301 * 16384 - 5, pieceLength: 16384),
    PieceGeometry(totalLength: 10 << 20, pieceLength: 4 << 20),
    PieceGeometry(totalLength: 1 << 34, pieceLength: 16384),
]

/// An escapable copy of a `WireEvent`.
private enum Decoded: Equatable {
    case handshake(Handshake)
    case message(PeerMessage)
    case bitfield([UInt8])
    case block(BlockRange, offsetInBlock: Int, [UInt8])
    case extended(id: UInt8, [UInt8])
    case unknown(id: UInt8, length: Int)

    /// Copies `event`; a block payload must point into `chunk` (the address range of the bytes fed),
    /// because the decoder promises never to copy one.
    init(_ event: borrowing WireEvent, chunk: Range<UInt>) {
        switch event {
        case .handshake(let handshake): self = .handshake(handshake)
        case .message(let message): self = .message(message)
        case .bitfield(let bytes): self = .bitfield(copy(bytes))
        case .blockData(let block, let offset, let bytes):
            let view = bytes.withUnsafeBufferPointer {
                UInt(bitPattern: $0.baseAddress)..<UInt(bitPattern: $0.baseAddress) + UInt($0.count)
            }
            precondition(
                !view.isEmpty && view.lowerBound >= chunk.lowerBound && view.upperBound <= chunk.upperBound,
                "block data is not a view of the chunk being fed")
            self = .block(block, offsetInBlock: offset, copy(bytes))
        case .extended(let id, let payload): self = .extended(id: id, copy(payload))
        case .unknown(let id, let length): self = .unknown(id: id, length: length)
        }
    }

    var isHandshake: Bool {
        if case .handshake = self { return true }
        return false
    }
}

private func copy(_ span: Span<UInt8>) -> [UInt8] {
    span.withUnsafeBufferPointer { Array($0) }
}

private struct Decoding {
    var events: [Decoded] = []
    var error: DisconnectReason?
    var isAtMessageBoundary = false
}

/// Feeds `stream` in chunks of the given sizes, repeated until the stream ends.
private func decode(_ stream: [UInt8], chunkSizes: [Int], _ setup: Setup) -> Decoding {
    var decoder = WireDecoder(
        geometry: setup.geometry, limits: setup.limits, expectsHandshake: setup.expectsHandshake)
    var result = Decoding()
    // An empty chunk must change nothing.
    do {
        try decoder.feed([UInt8]().span) { _ in preconditionFailure("an event from no bytes") }
    } catch {
        preconditionFailure("an empty chunk failed a fresh decoder: \(error)")
    }
    var start = 0
    var sizes = chunkSizes.isEmpty ? [stream.count] : chunkSizes
    while start < stream.count {
        let size = sizes.removeFirst()
        sizes.append(size)
        let chunk = Array(stream[start..<min(stream.count, start + max(1, size))])
        start += chunk.count
        let bounds = chunk.withUnsafeBufferPointer {
            UInt(bitPattern: $0.baseAddress)..<UInt(bitPattern: $0.baseAddress) + UInt($0.count)
        }
        do {
            try decoder.feed(chunk.span) { result.events.append(Decoded($0, chunk: bounds)) }
        } catch {
            result.error = error
            break
        }
    }
    if let error = result.error {
        let more = Array(stream.prefix(1))
        var refused = false
        do {
            try decoder.feed(more.span) { _ in preconditionFailure("an event after a failure") }
        } catch let again {
            precondition(again == error, "a failed decoder changed its error")
            refused = true
        }
        precondition(refused, "a failed decoder accepted more bytes")
    } else {
        result.isAtMessageBoundary = decoder.isAtMessageBoundary
    }
    return result
}

/// Merges the consecutive pieces of one block, so that decodings cut differently compare equal.
private func coalesced(_ events: [Decoded]) -> [Decoded] {
    var out: [Decoded] = []
    // The block being merged is kept apart so that its bytes grow in place: a block fed a byte at a
    // time would otherwise be copied once per byte.
    var run: (block: BlockRange, offset: Int)?
    var runBytes: [UInt8] = []
    func endRun() {
        if let run { out.append(.block(run.block, offsetInBlock: run.offset, runBytes)) }
        run = nil
    }
    for event in events {
        if case .block(let block, let offset, let bytes) = event {
            if let run, run.block == block, run.offset + runBytes.count == offset, offset != 0 {
                runBytes += bytes
                continue
            }
            endRun()
            run = (block, offset)
            runBytes = bytes
        } else {
            endRun()
            out.append(event)
        }
    }
    endRun()
    return out
}

/// What the torrent and the limits allow, event by event; and each fixed-size message must come back
/// from its own encoding unchanged.
private func check(_ event: Decoded, _ setup: Setup) {
    let geometry = setup.geometry
    func inRange(_ piece: PieceIndex) -> Bool { piece.int < geometry.pieceCount }
    switch event {
    case .handshake(let handshake):
        var bytes: [UInt8] = []
        handshake.encode(into: &bytes)
        precondition((try? Handshake(parsing: bytes.span)) == handshake, "handshake did not round-trip")
    case .message(let message):
        switch message {
        case .have(let piece), .suggestPiece(let piece), .allowedFast(let piece):
            precondition(inRange(piece), "piece out of range")
        case .request(let block), .cancel(let block), .rejectRequest(let block):
            precondition(geometry.isValid(block), "invalid block")
        case .keepAlive, .choke, .unchoke, .interested, .notInterested, .port, .haveAll, .haveNone,
            .hashRequest:
            break
        }
        var bytes: [UInt8] = []
        message.encode(into: &bytes)
        let again = decode(
            bytes, chunkSizes: [], Setup(geometry: geometry, expectsHandshake: false, limits: setup.limits))
        precondition(
            again.error == nil && again.events == [.message(message)] && again.isAtMessageBoundary,
            "a message did not decode from its own encoding")
    case .bitfield(let bytes):
        precondition(bytes.count == PieceSet.wireByteCount(pieceCount: geometry.pieceCount), "bitfield size")
        precondition(PieceSet.spareBitsAreZero(bytes.span, pieceCount: geometry.pieceCount), "spare bits set")
    case .block(let block, let offset, let bytes):
        precondition(geometry.isValid(block), "invalid block")
        precondition(offset == 0 && bytes.count <= Int(block.length), "block data outside its block")
    case .extended(_, let payload):
        precondition(payload.count <= setup.limits.maximumExtendedPayloadBytes, "extended payload over limit")
    case .unknown(let id, let length):
        precondition(MessageID(rawValue: id) == nil, "a known id reported as unknown")
        precondition(
            length >= 1 && length - 1 <= setup.limits.maximumUnknownMessageBytes, "unknown over limit")
    }
}

/// The re-encoded events and whether the last one is whole.
private struct Consumed {
    var count = 0
    var isComplete = true
}

/// Encodes the events again and requires the result to be the start of `stream`: the bytes the decoder
/// consumed. Block data and skipped messages may stop short, but only in the last event.
private func reencode(_ events: [Decoded], stream: [UInt8]) -> Consumed {
    var bytes: [UInt8] = []
    var consumed = Consumed()
    for event in events {
        precondition(consumed.isComplete, "an event after an unfinished message")
        let start = bytes.count
        switch event {
        case .handshake(let handshake):
            precondition(bytes.isEmpty, "a handshake after the start")
            handshake.encode(into: &bytes)
        case .message(let message):
            message.encode(into: &bytes)
        case .bitfield(let bitfield):
            WireEncoder.appendBitfield(bitfield.span, into: &bytes)
        case .block(let block, _, let payload):
            WireEncoder.appendPieceHeader(for: block, into: &bytes)
            bytes += payload
            consumed.isComplete = payload.count == Int(block.length)
        case .extended(let id, let payload):
            WireEncoder.appendExtended(id: id, payload: payload.span, into: &bytes)
        case .unknown(let id, let length):
            bytes += bigEndian(UInt32(length)) + [id]
            let skipped = stream[min(stream.count, bytes.count)..<min(stream.count, bytes.count + length - 1)]
            consumed.isComplete = skipped.count == length - 1
            bytes += skipped
        }
        // Only the bytes this event added: the ones before were compared already.
        precondition(
            bytes.count <= stream.count && bytes[start...].elementsEqual(stream[start..<bytes.count]),
            "the events do not re-encode to the bytes they were decoded from")
    }
    consumed.count = bytes.count
    return consumed
}

/// The error must be about the message that starts where the events stopped.
private func check(_ error: DisconnectReason, at position: Int, in stream: [UInt8], _ setup: Setup) {
    let rest = Array(stream[position...])
    func lengthAndID(_ length: Int, _ id: UInt8) -> Bool {
        rest.count >= 5 && Int(readUInt32(rest, at: 0)) == length && rest[4] == id
    }
    switch error {
    case .malformedHandshake:
        precondition(setup.expectsHandshake && position == 0, "handshake error after the handshake")
    case .messageTooLong(let id, let length, let limit):
        precondition(length > limit && lengthAndID(length, id), "messageTooLong names another message")
    case .wrongMessageLength(let id, let length, let expected):
        precondition(length != expected && lengthAndID(length, id.rawValue), "wrong length names another")
    case .pieceOutOfRange(let id, let index, let pieceCount):
        precondition(
            pieceCount == setup.geometry.pieceCount && Int(index) >= pieceCount && rest.count >= 9
                && rest[4] == id.rawValue && readUInt32(rest, at: 5) == index, "piece error names another")
    case .invalidBlock(let id, let piece, let offset, let length):
        let blockLength = id == .piece ? readUInt32(rest, at: 0) &- 9 : readUInt32(rest, at: 13)
        precondition(
            rest.count >= 13 && rest[4] == id.rawValue && readUInt32(rest, at: 5) == piece
                && readUInt32(rest, at: 9) == offset && blockLength == length,
            "block error names another message")
        precondition(
            !setup.geometry.isValid(BlockRange(piece: PieceIndex(piece), offset: offset, length: length)),
            "a valid block refused")
    case .bitfieldSpareBitsSet:
        precondition(
            rest.count >= 5 && rest[4] == MessageID.bitfield.rawValue, "bitfield error names another")
    default:
        preconditionFailure("the framing decoder threw a connection-level reason: \(error)")
    }
    precondition(!error.description.isEmpty, "a reason without a description")
}

/// `HandshakePrefix` (which picks the torrent for an incoming connection) and the decoder must agree
/// on what a BitTorrent handshake is.
private func checkSniffing(_ stream: [UInt8], decoded first: Decoded?, error: DisconnectReason?) {
    var refused = false
    if case .malformedHandshake? = error { refused = true }
    switch HandshakePrefix.classify(stream) {
    case .needMore:
        precondition(stream.count < HandshakePrefix.byteCount && !refused, "needMore for a complete prefix")
    case .notBitTorrent:
        precondition(refused, "the router refuses a handshake the decoder accepts")
    case .infoHash(let infoHash):
        precondition(!refused && infoHash.bytes == Array(stream[28..<48]), "the router read another hash")
        if case .handshake(let handshake)? = first {
            precondition(handshake.infoHash == infoHash, "the router and the decoder read different hashes")
        }
    }
}

private func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
}

/// Zero where the bytes run out, so a short stream fails the comparison instead of trapping.
private func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { value, index in
        value << 8 | UInt32(offset + index < bytes.count ? bytes[offset + index] : 0)
    }
}
