import Hashing
import PeerWire
import Testing
import TorrentModel

/// Byte-exact encodings, written out from the message definitions in BEP 3, 5, 6 and 10.
@Suite struct EncodingTests {
    static let block = BlockRange(piece: PieceIndex(1), offset: 0x4000, length: 0x4000)

    /// (message, expected bytes as hex): `<length prefix><id><payload>`.
    static let vectors: [(PeerMessage, String)] = [
        (.keepAlive, "00000000"),  // BEP 3: a zero length prefix
        (.choke, "00000001 00"),
        (.unchoke, "00000001 01"),
        (.interested, "00000001 02"),
        (.notInterested, "00000001 03"),
        (.have(PieceIndex(5)), "00000005 04 00000005"),
        (.request(block), "0000000d 06 00000001 00004000 00004000"),
        (.cancel(block), "0000000d 08 00000001 00004000 00004000"),
        (.port(6881), "00000003 09 1ae1"),  // BEP 5: two-byte port
        (.suggestPiece(PieceIndex(3)), "00000005 0d 00000003"),  // BEP 6 ops 0x0D...0x11
        (.haveAll, "00000001 0e"),
        (.haveNone, "00000001 0f"),
        (.rejectRequest(block), "0000000d 10 00000001 00004000 00004000"),
        (.allowedFast(PieceIndex(4)), "00000005 11 00000004"),
        // BEP 52: pieces root, base layer, index, length, proof layers.
        (
            .hashRequest(
                HashRequest(
                    piecesRoot: SHA256Digest(bytes: [UInt8](repeating: 0xab, count: 32))!, baseLayer: 2,
                    index: 512,
                    length: 512, proofLayers: 9)),
            "00000031 15 " + String(repeating: "ab", count: 32) + " 00000002 00000200 00000200 00000009"
        ),
    ]

    @Test func fixedSizeMessagesMatchTheBEPs() {
        for (message, hex) in Self.vectors {
            var out: [UInt8] = [0xee]  // encoders append: what was there stays
            message.encode(into: &out)
            #expect(out == [0xee] + bytes(hex), "\(message)")
        }
    }

    @Test func fixedSizeMessagesDecodeBackToThemselves() {
        let stream = Self.vectors.flatMap { bytes($0.1) }
        let decoded = decode(stream, chunkSizes: [stream.count], geometry: testGeometry)
        #expect(decoded.error == nil)
        #expect(decoded.events == Self.vectors.map { .message($0.0) })
    }

    @Test func bitfieldPieceAndExtendedMatchTheBEPs() {
        var out: [UInt8] = []
        WireEncoder.appendBitfield([0xa0].span, into: &out)
        #expect(out == bytes("00000002 05 a0"))

        out = []
        let data: [UInt8] = [0xde, 0xad]
        WireEncoder.appendPiece(
            BlockRange(piece: PieceIndex(2), offset: 0x10, length: 2), payload: data.span, into: &out)
        #expect(out == bytes("0000000b 07 00000002 00000010 dead"))

        out = []
        WireEncoder.appendPieceHeader(
            for: BlockRange(piece: PieceIndex(2), offset: 0x10, length: 2), into: &out)
        #expect(out == bytes("0000000b 07 00000002 00000010"))
        #expect(out.count == WireEncoder.pieceHeaderByteCount)

        // BEP 10: <len><20><extended id><payload>; the spec's example handshake dictionary.
        out = []
        let dictionary = Array("d1:md11:LT_metadatai1ee".utf8)
        WireEncoder.appendExtended(id: 0, payload: dictionary.span, into: &out)
        #expect(out == [0, 0, 0, UInt8(2 + dictionary.count), 20, 0] + dictionary)
    }

    @Test func handshakeLayoutAndReservedBits() throws {
        let handshake = Handshake(
            reserved: [.fastExtension, .extensionProtocol, .dht], infoHash: id20(0xaa), peerID: id20(0xbb))
        var out: [UInt8] = []
        handshake.encode(into: &out)
        #expect(out.count == 68)
        #expect(out[0] == 19)
        #expect(Array(out[1..<20]) == Array("BitTorrent protocol".utf8))
        // BEP 10: reserved[5] & 0x10; BEP 6: reserved[7] & 0x04; BEP 5: reserved[7] & 0x01.
        #expect(Array(out[20..<28]) == [0, 0, 0, 0, 0, 0x10, 0, 0x05])
        #expect(Array(out[28..<48]) == [UInt8](repeating: 0xaa, count: 20))
        #expect(Array(out[48..<68]) == [UInt8](repeating: 0xbb, count: 20))
        #expect(handshake.reserved.byte(at: 5) == 0x10 && handshake.reserved.byte(at: 7) == 0x05)
        #expect(try Handshake(parsing: out.span) == handshake)
    }

    @Test func unknownReservedBitsSurviveARoundTrip() throws {
        var out: [UInt8] = []
        let reserved = ReservedBits(rawValue: 0x8000_0000_0000_0002)
        Handshake(reserved: reserved, infoHash: id20(1), peerID: id20(2)).encode(into: &out)
        #expect(out[20] == 0x80 && out[27] == 0x02)
        let parsed = try Handshake(parsing: out.span)
        #expect(parsed.reserved == reserved)
        #expect(!parsed.reserved.contains(.fastExtension))
    }

    @Test func handshakeFromAnotherProtocolIsRefused() {
        var out: [UInt8] = []
        Handshake(reserved: [], infoHash: id20(1), peerID: id20(2)).encode(into: &out)
        var wrongName = out
        wrongName[5] = UInt8(ascii: "X")
        #expect(throws: DisconnectReason.self) { try Handshake(parsing: wrongName.span) }
        #expect(throws: DisconnectReason.self) { try Handshake(parsing: Array(out[0..<67]).span) }
        // The decoder refuses at the first wrong byte, without waiting for 68.
        let early = decode([0x05, 0x00], chunkSizes: [1, 1], geometry: testGeometry, expectsHandshake: true)
        #expect(early.error == .malformedHandshake(detail: "protocol name length 5, expected 19"))
        let http = decode(
            Array("GET / HTTP/1.1".utf8), chunkSizes: [1], geometry: testGeometry, expectsHandshake: true)
        #expect(http.error != nil && http.events.isEmpty)
    }
}

/// The decoder must give the same events however the stream is cut.
@Suite struct ChunkingTests {
    /// A stream with every kind of message, a handshake first, and pieces of several sizes.
    static func mixedStream() -> (stream: [UInt8], expected: [DecodedEvent]) {
        let content = testContent()
        var stream: [UInt8] = []
        var expected: [DecodedEvent] = []
        let handshake = Handshake(reserved: [.fastExtension], infoHash: id20(0xaa), peerID: id20(0x02))
        handshake.encode(into: &stream)
        expected.append(.handshake(handshake))
        WireEncoder.appendBitfield([0xfc].span, into: &stream)
        expected.append(.bitfield([0xfc]))
        for message in EncodingTests.vectors.map(\.0) {
            message.encode(into: &stream)
            expected.append(.message(message))
        }
        let blocks = [
            testGeometry.block(0, of: PieceIndex(0)), testGeometry.block(1, of: PieceIndex(4)),
            testGeometry.block(0, of: PieceIndex(5)),
            BlockRange(piece: PieceIndex(2), offset: 100, length: 1),
        ]
        for block in blocks {
            let data = payload(of: block, in: content)
            WireEncoder.appendPiece(block, payload: data.span, into: &stream)
            expected.append(.block(block, offsetInBlock: 0, data))
            PeerMessage.keepAlive.encode(into: &stream)
            expected.append(.message(.keepAlive))
        }
        let extensionPayload = Array("d1:md6:ut_pexi2eee".utf8)
        WireEncoder.appendExtended(id: 0, payload: extensionPayload.span, into: &stream)
        expected.append(.extended(id: 0, extensionPayload))
        stream += bytes("00000004 63 010203")  // unknown id 99, skipped
        expected.append(.unknown(id: 99, length: 4))
        PeerMessage.have(PieceIndex(5)).encode(into: &stream)
        expected.append(.message(.have(PieceIndex(5))))
        return (stream, expected)
    }

    @Test func allAtOnceOneByteAtATimeAndRandomChunksAgree() {
        let (stream, expected) = Self.mixedStream()
        let whole = decode(stream, chunkSizes: [stream.count], geometry: testGeometry, expectsHandshake: true)
        #expect(whole.error == nil)
        #expect(whole.events == expected)

        let byByte = decode(
            stream, chunkSizes: Array(repeating: 1, count: stream.count), geometry: testGeometry,
            expectsHandshake: true)
        #expect(byByte.error == nil)
        #expect(coalesced(byByte.events) == expected)
        // One byte at a time, each payload byte is its own event: nothing was gathered into a copy.
        let payloadEvents = byByte.events.filter { if case .block = $0 { true } else { false } }
        #expect(payloadEvents.count == 16384 + 16384 + 10000 + 1)

        var random = SeededRandom(seed: 0x5eed)
        for _ in 0..<50 {
            let sizes = randomChunkSizes(total: stream.count, using: &random)
            let cut = decode(stream, chunkSizes: sizes, geometry: testGeometry, expectsHandshake: true)
            #expect(cut.error == nil)
            #expect(coalesced(cut.events) == expected, "chunk sizes \(sizes.prefix(20))")
        }
    }

    @Test func blockDataOffsetsFollowTheChunks() {
        let block = testGeometry.block(0, of: PieceIndex(1))
        let data = payload(of: block, in: testContent())
        let stream = pieceMessage(block, data)
        // Cut inside the length prefix, inside the header, then through the payload.
        let result = decode(stream, chunkSizes: [2, 9, 100, 5000, 20000], geometry: testGeometry)
        #expect(result.error == nil)
        #expect(
            result.events == [
                .block(block, offsetInBlock: 0, Array(data[0..<98])),
                .block(block, offsetInBlock: 98, Array(data[98..<5098])),
                .block(block, offsetInBlock: 5098, Array(data[5098...])),
            ])
    }

    @Test func decoderReportsWhetherItIsBetweenMessages() throws {
        var decoder = WireDecoder(geometry: testGeometry, expectsHandshake: false)
        #expect(decoder.isAtMessageBoundary)
        try decoder.feed(bytes("000000").span) { _ in }
        #expect(!decoder.isAtMessageBoundary)
        try decoder.feed(bytes("0102").span) { _ in }
        #expect(decoder.isAtMessageBoundary)
    }
}

/// Hostile framing: every case ends in a typed error, never a trap or a large allocation.
@Suite struct HostileFramingTests {
    func error(of hex: String, limits: WireLimits = WireLimits()) -> DisconnectReason? {
        let stream = bytes(hex)
        let whole = decode(stream, chunkSizes: [stream.count], geometry: testGeometry, limits: limits)
        let byByte = decode(
            stream, chunkSizes: Array(repeating: 1, count: stream.count), geometry: testGeometry,
            limits: limits)
        #expect(whole.error == byByte.error)
        return whole.error
    }

    @Test func oversizedPieceIsRefusedBeforeItsPayload() {
        // 4 GiB length prefix on a piece: refused as soon as the id is known.
        #expect(
            error(of: "ffffffff 07")
                == .messageTooLong(id: 7, length: 0xffff_ffff, limit: WireLimits.maximumPieceMessageLength))
        let justOver = String(WireLimits.maximumPieceMessageLength + 1, radix: 16)
        #expect(error(of: String(repeating: "0", count: 8 - justOver.count) + justOver + "07") != nil)
    }

    @Test func oversizedExtendedAndUnknownMessagesAreRefused() {
        let limits = WireLimits(maximumExtendedPayloadBytes: 100, maximumUnknownMessageBytes: 50)
        #expect(
            error(of: "00000067 14 00", limits: limits) == .messageTooLong(id: 20, length: 103, limit: 102))
        #expect(error(of: "00000066 14 00", limits: limits) == nil)  // exactly at the limit: just incomplete
        #expect(error(of: "00000034 63", limits: limits) == .messageTooLong(id: 99, length: 52, limit: 51))
        #expect(error(of: "00000001 14") == .wrongMessageLength(id: .extended, length: 1, expected: 2))
    }

    @Test func fixedMessagesWithTheWrongLengthAreRefused() {
        #expect(error(of: "00000002 00 00") == .wrongMessageLength(id: .choke, length: 2, expected: 1))
        #expect(error(of: "00000004 04 000000") == .wrongMessageLength(id: .have, length: 4, expected: 5))
        #expect(error(of: "0000000e 06") == .wrongMessageLength(id: .request, length: 14, expected: 13))
        #expect(error(of: "00000008 07") == .wrongMessageLength(id: .piece, length: 8, expected: 9))
        #expect(error(of: "00000002 0e 00") == .wrongMessageLength(id: .haveAll, length: 2, expected: 1))
    }

    @Test func bitfieldMustBeExactlySizedWithSpareBitsClear() {
        // Six pieces: one byte, the low two bits spare.
        #expect(error(of: "00000002 05 fc") == nil)
        #expect(error(of: "00000003 05 fc00") == .wrongMessageLength(id: .bitfield, length: 3, expected: 2))
        #expect(error(of: "00000001 05") == .wrongMessageLength(id: .bitfield, length: 1, expected: 2))
        #expect(error(of: "00000002 05 fd") == .bitfieldSpareBitsSet(pieceCount: 6))
        #expect(error(of: "00000002 05 fe") == .bitfieldSpareBitsSet(pieceCount: 6))
        // A huge "bitfield" is refused by its length before it is buffered.
        #expect(error(of: "00100000 05") == .wrongMessageLength(id: .bitfield, length: 0x100000, expected: 2))
    }

    @Test func piecesAndBlocksOutsideTheTorrentAreRefused() {
        #expect(error(of: "00000005 04 00000006") == .pieceOutOfRange(id: .have, index: 6, pieceCount: 6))
        #expect(
            error(of: "00000005 11 ffffffff")
                == .pieceOutOfRange(id: .allowedFast, index: 0xffff_ffff, pieceCount: 6))
        // The last piece is 10000 bytes: a block running past it is invalid.
        #expect(
            error(of: "0000000d 06 00000005 00000000 00004000")
                == .invalidBlock(id: .request, piece: 5, offset: 0, length: 0x4000))
        // Zero-length and over-128-KiB requests.
        #expect(
            error(of: "0000000d 08 00000000 00000000 00000000")
                == .invalidBlock(id: .cancel, piece: 0, offset: 0, length: 0))
        #expect(
            error(of: "0000000d 10 00000000 00000000 00020001")
                == .invalidBlock(id: .rejectRequest, piece: 0, offset: 0, length: 0x20001))
        // An offset that would overflow 32 bits.
        #expect(
            error(of: "0000000d 06 00000000 ffffffff 00004000")
                == .invalidBlock(id: .request, piece: 0, offset: 0xffff_ffff, length: 0x4000))
        // A piece message for a block outside its piece, and an empty one.
        #expect(
            error(of: "0000000b 07 00000000 00007fff 0000")
                == .invalidBlock(id: .piece, piece: 0, offset: 0x7fff, length: 2))
        #expect(
            error(of: "00000009 07 00000000 00000000")
                == .invalidBlock(id: .piece, piece: 0, offset: 0, length: 0))
        #expect(
            error(of: "0000000a 07 00000009 00000000 00")
                == .pieceOutOfRange(id: .piece, index: 9, pieceCount: 6))
    }

    @Test func unknownMessagesAreSkippedAndDecodingGoesOn() {
        let stream = bytes("00000003 fe abcd 00000001 02")
        let result = decode(stream, chunkSizes: [1, 5, 1], geometry: testGeometry)
        #expect(result.error == nil)
        #expect(result.events == [.unknown(id: 0xfe, length: 3), .message(.interested)])
    }

    @Test func aFailedDecoderStaysFailed() {
        var decoder = WireDecoder(geometry: testGeometry, expectsHandshake: false)
        let bad = bytes("00000002 00 00")
        #expect(throws: DisconnectReason.self) { try decoder.feed(bad.span) { _ in } }
        var events = 0
        let good = bytes("00000001 02")
        #expect(throws: DisconnectReason.wrongMessageLength(id: .choke, length: 2, expected: 1)) {
            try decoder.feed(good.span) { _ in events += 1 }
        }
        #expect(events == 0)
    }

    @Test func randomGarbageNeverTraps() {
        // Whatever the bytes, the decoder returns events or a typed error; the test is that it gets here.
        var random = SeededRandom(seed: 42)
        var failures = 0
        for _ in 0..<300 {
            let count = Int.random(in: 0...300, using: &random)
            var stream = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Small lengths make real messages likely: zero the high bytes of the first prefix.
            if stream.count >= 4 { stream[0] = 0; stream[1] = 0; stream[2] = 0 }
            let sizes = randomChunkSizes(total: stream.count, using: &random)
            if decode(stream, chunkSizes: sizes, geometry: testGeometry).error != nil { failures += 1 }
        }
        #expect(failures > 0)
    }
}

@Suite struct HandshakePrefixTests {
    @Test func theInfoHashIsReadOnceItsBytesArrive() {
        var bytes: [UInt8] = []
        Handshake(reserved: [.fastExtension], infoHash: localInfoHash, peerID: remotePeerID).encode(
            into: &bytes)
        #expect(HandshakePrefix.classify(bytes) == .infoHash(localInfoHash))
        #expect(HandshakePrefix.classify(bytes[..<48]) == .infoHash(localInfoHash))
        #expect(HandshakePrefix.classify(bytes[..<47]) == .needMore)
        #expect(HandshakePrefix.classify([]) == .needMore)
    }

    @Test func anythingElseIsNotBitTorrent() {
        // An MSE (BEP 8) handshake starts with a Diffie-Hellman key: random bytes.
        #expect(HandshakePrefix.classify([0x3e, 0x74, 0x9a]) == .notBitTorrent)
        #expect(HandshakePrefix.classify(Array("\u{13}BitTorrent protocoX".utf8)) == .notBitTorrent)
        #expect(HandshakePrefix.classify(Array("GET / HTTP/1.1\r\n".utf8)) == .notBitTorrent)
    }
}
