import Bencode
import Testing
import TorrentModel

@testable import PeerWire

private func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

/// BEP 9's `ut_metadata` messages, from the examples in the BEP, and the limits on what a peer may send.
@Suite struct MetadataMessageTests {
    @Test func decodesTheBEPExamples() throws {
        #expect(try MetadataMessage(decoding: utf8("d8:msg_typei0e5:piecei0ee")) == .request(piece: 0))
        // The BEP's data example: a first piece of metadata 34256 bytes long, so exactly 16 KiB follow.
        let piece = [UInt8](repeating: UInt8(ascii: "x"), count: 16384)
        let data = try MetadataMessage(
            decoding: utf8("d8:msg_typei1e5:piecei0e10:total_sizei34256ee") + piece)
        #expect(data == .data(piece: 0, totalSize: 34256, payload: piece))
        // The BEP's reject example says `msg_type` 1, a typo for 2: as printed it is a data message without
        // a size.
        #expect(try MetadataMessage(decoding: utf8("d8:msg_typei2e5:piecei0ee")) == .reject(piece: 0))
        #expect(throws: MetadataMessage.DecodingError.missingField("total_size")) {
            try MetadataMessage(decoding: utf8("d8:msg_typei1e5:piecei0ee"))
        }
    }

    @Test func encodesCanonicallyAndRoundTrips() throws {
        #expect(MetadataMessage.request(piece: 3).encoded() == utf8("d8:msg_typei0e5:piecei3ee"))
        #expect(MetadataMessage.reject(piece: 1).encoded() == utf8("d8:msg_typei2e5:piecei1ee"))
        let last = MetadataMessage.data(piece: 2, totalSize: 2 * 16384 + 5, payload: [1, 2, 3, 4, 5])
        #expect(last.encoded() == utf8("d8:msg_typei1e5:piecei2e10:total_sizei32773ee") + [1, 2, 3, 4, 5])
        for message in [MetadataMessage.request(piece: 2047), .reject(piece: 0), last] {
            #expect(try MetadataMessage(decoding: message.encoded()) == message)
        }
    }

    @Test func unknownKeysAreIgnoredAndUnknownTypesReported() throws {
        #expect(
            try MetadataMessage(decoding: utf8("d3:fooli1ee8:msg_typei0e5:piecei7ee")) == .request(piece: 7))
        // BEP 9: an unknown message type must be ignored, so it is its own error, not a malformed message.
        #expect(throws: MetadataMessage.DecodingError.unknownMessageType(3)) {
            try MetadataMessage(decoding: utf8("d8:msg_typei3e5:piecei0ee"))
        }
    }

    @Test func piecesOutsideTheMetadataAreRefused() {
        let maximum = MetadataMessage.maximumPieceCount
        #expect(throws: MetadataMessage.DecodingError.pieceOutOfRange(piece: -1, pieceCount: maximum)) {
            try MetadataMessage(decoding: utf8("d8:msg_typei0e5:piecei-1ee"))
        }
        #expect(throws: MetadataMessage.DecodingError.pieceOutOfRange(piece: 2048, pieceCount: maximum)) {
            try MetadataMessage(decoding: utf8("d8:msg_typei2e5:piecei2048ee"))
        }
        // A data message is bounded by its own total size: 100 bytes have one piece.
        #expect(throws: MetadataMessage.DecodingError.pieceOutOfRange(piece: 1, pieceCount: 1)) {
            try MetadataMessage(
                decoding: utf8("d8:msg_typei1e5:piecei1e10:total_sizei100ee")
                    + [UInt8](repeating: 0, count: 100))
        }
    }

    @Test func sizesAboveTheMaximumAreRefused() {
        let tooLarge = Int64(MetadataMessage.maximumMetadataSize + 1)
        #expect(throws: MetadataMessage.DecodingError.totalSizeOutOfRange(tooLarge)) {
            try MetadataMessage(decoding: utf8("d8:msg_typei1e5:piecei0e10:total_sizei\(tooLarge)ee"))
        }
        #expect(throws: MetadataMessage.DecodingError.totalSizeOutOfRange(0)) {
            try MetadataMessage(decoding: utf8("d8:msg_typei1e5:piecei0e10:total_sizei0ee"))
        }
        let handshake = try? ExtensionHandshake(decoding: utf8("d1:mde13:metadata_sizei\(tooLarge)ee"))
        #expect(handshake != nil && handshake?.metadataSize == nil, "a handshake's oversized size is ignored")
        let largest = try? ExtensionHandshake(
            decoding: utf8("d1:mde13:metadata_sizei\(MetadataMessage.maximumMetadataSize)ee"))
        #expect(largest?.metadataSize == MetadataMessage.maximumMetadataSize)
    }

    @Test func dataPiecesMustHaveTheirExactLength() {
        let header = utf8("d8:msg_typei1e5:piecei0e10:total_sizei20000ee")
        #expect(
            throws: MetadataMessage.DecodingError.wrongPieceLength(piece: 0, length: 16383, expected: 16384)
        ) {
            try MetadataMessage(decoding: header + [UInt8](repeating: 0, count: 16383))
        }
        let last = utf8("d8:msg_typei1e5:piecei1e10:total_sizei20000ee")
        #expect(
            throws: MetadataMessage.DecodingError.wrongPieceLength(piece: 1, length: 3617, expected: 3616)
        ) {
            try MetadataMessage(decoding: last + [UInt8](repeating: 0, count: 3617))
        }
        #expect(throws: MetadataMessage.DecodingError.wrongPieceLength(piece: 1, length: 0, expected: 3616)) {
            try MetadataMessage(decoding: last)
        }
    }

    @Test func malformedPayloadsAreTypedErrors() {
        #expect(throws: MetadataMessage.DecodingError.trailingBytes(count: 2)) {
            try MetadataMessage(decoding: utf8("d8:msg_typei0e5:piecei0eexx"))
        }
        #expect(throws: MetadataMessage.DecodingError.notADictionary) {
            try MetadataMessage(decoding: utf8("li0eexx"))
        }
        #expect(throws: MetadataMessage.DecodingError.missingField("msg_type")) {
            try MetadataMessage(decoding: utf8("d5:piecei0ee"))
        }
        #expect(throws: MetadataMessage.DecodingError.missingField("piece")) {
            try MetadataMessage(decoding: utf8("d8:msg_typei0e5:piece1:0e"))
        }
        let request = utf8("d8:msg_typei0e5:piecei0ee")
        for length in 0..<request.count {
            #expect(throws: MetadataMessage.DecodingError.self) {
                try MetadataMessage(decoding: Array(request.prefix(length)))
            }
        }
        let padded =
            utf8("d8:msg_typei1e3:pad2000:") + [UInt8](repeating: 0, count: 2000)
            + utf8("5:piecei0e10:total_sizei1ee")
        let bound = MetadataMessage.maximumDictionaryBytes
        #expect(
            throws: MetadataMessage.DecodingError.malformed(
                .inputTooLarge(byteCount: padded.count, limit: bound))
        ) {
            try MetadataMessage(decoding: padded + [0])
        }
    }
}

@Suite struct MetadataServerTests {
    static let metadata = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }

    @Test func servesEachPieceAndRejectsOthers() throws {
        var server = try #require(MetadataServer(infoDictionary: Self.metadata))
        #expect(server.metadataSize == 40_000)
        #expect(
            server.answer(requestFor: 0, now: .zero)
                == .data(piece: 0, totalSize: 40_000, payload: Array(Self.metadata[0..<16384])))
        #expect(
            server.answer(requestFor: 2, now: .zero)
                == .data(piece: 2, totalSize: 40_000, payload: Array(Self.metadata[32768...])))
        #expect(server.answer(requestFor: 3, now: .zero) == .reject(piece: 3))
        #expect(server.answer(requestFor: -1, now: .zero) == .reject(piece: -1))
    }

    @Test func refusesEmptyOrOversizedMetadata() {
        #expect(MetadataServer(infoDictionary: []) == nil)
        #expect(
            MetadataServer(
                infoDictionary: [UInt8](repeating: 0, count: MetadataMessage.maximumMetadataSize + 1))
                == nil)
    }

    @Test func aPeerAskingInALoopIsRejectedUntilTheBucketRefills() throws {
        var server = try #require(MetadataServer(infoDictionary: Self.metadata))
        // Three pieces: the bucket holds the metadata twice.
        for round in 0..<6 {
            guard case .data = server.answer(requestFor: round % 3, now: .zero) else {
                Issue.record("request \(round) within the burst was rejected")
                return
            }
        }
        #expect(server.answer(requestFor: 0, now: .zero) == .reject(piece: 0))
        #expect(server.answer(requestFor: 0, now: Instant(nanoseconds: 200_000_000)) == .reject(piece: 0))
        let refilled = Instant(nanoseconds: 1_000_000_000 / UInt64(MetadataServer.refillPiecesPerSecond))
        #expect(server.answer(requestFor: 0, now: refilled) != .reject(piece: 0))
        #expect(server.answer(requestFor: 0, now: refilled) == .reject(piece: 0))
    }
}
