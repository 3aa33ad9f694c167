import Bencode
import Testing
import TorrentModel

@testable import PeerWire

/// BEP 10's extension handshake, from the example dictionary in the BEP.
@Suite struct ExtensionHandshakeTests {
    @Test func parsesTheBEPExample() throws {
        // BEP 10: {'m': {'ut_metadata', 3}, 'v': 'uTorrent 1.2', 'p': 6881, 'reqq': 255} (with a yourip)
        let payload = Array(
            "d1:md11:ut_metadatai3ee1:pi6881e4:reqqi255e1:v12:uTorrent 1.26:yourip4:\u{7f}\0\0\u{1}e".utf8)
        let handshake = try ExtensionHandshake(decoding: payload)
        #expect(handshake.extensions == ["ut_metadata": 3])
        #expect(handshake.listenPort == 6881)
        #expect(handshake.requestQueueLength == 255)
        #expect(handshake.clientName == "uTorrent 1.2")
        #expect(handshake.yourAddress == [127, 0, 0, 1])
        #expect(!handshake.prefersEncryption)
        let encrypted = try ExtensionHandshake(decoding: Array("d1:ei1e1:md6:ut_pexi1eee".utf8))
        #expect(encrypted.prefersEncryption && encrypted.extensions == ["ut_pex": 1])
        #expect(try ExtensionHandshake(decoding: encrypted.encoded()) == encrypted)
    }

    @Test func roundTripsCanonically() throws {
        let ours = ExtensionHandshake(
            extensions: ["ut_metadata": 2], clientName: "Potluck 0.1.0", requestQueueLength: 500,
            listenPort: 51413)
        let bytes = ours.encoded()
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == "d1:md11:ut_metadatai2ee1:pi51413e4:reqqi500e1:v13:Potluck 0.1.0e")
        #expect(try ExtensionHandshake(decoding: bytes) == ours)
    }

    @Test func hostileValuesAreBoundedOrIgnored() throws {
        let huge = try ExtensionHandshake(decoding: Array("d1:mli1ee1:pi70000e4:reqqi99999999999ee".utf8))
        #expect(huge.requestQueueLength == ExtensionHandshake.maximumRequestQueueLength)
        #expect(huge.listenPort == nil, "a port above 65535 is ignored")
        #expect(huge.extensions.isEmpty, "an `m` that is not a dictionary is ignored")
        #expect(throws: ExtensionHandshake.DecodingError.notADictionary) {
            try ExtensionHandshake(decoding: Array("li1ee".utf8))
        }
        #expect(throws: (any Error).self) { try ExtensionHandshake(decoding: Array("d1:v".utf8)) }
        let longName = try ExtensionHandshake(
            decoding: Array("d1:v300:\(String(repeating: "x", count: 300))e".utf8))
        #expect(longName.clientName?.utf8.count == ExtensionHandshake.maximumClientNameBytes)
    }

    /// Regression (found by ExtensionHandshakeFuzz): a client name with bytes that are not UTF-8 was cut
    /// to 128 bytes and then decoded, each bad byte becoming a three-byte U+FFFD, so the name kept was
    /// 248 bytes long, and decoding our own encoding of the handshake cut it again, to another name.
    @Test func clientNameOfInvalidUTF8StaysWithinItsLimitAndRoundTrips() throws {
        let payload = try #require(
            Hex.decode(
                "64313a763132323a75745f6d65746164617461263165363a75ffffffffffffffffffffffffffffffffffffff"
                    + "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff715f706f74693265"
                    + "6531333a6d65746164615f746173693a4464ffffffffffffffff32323a75745f6d657461646174613a7065"
            ))
        let handshake = try ExtensionHandshake(decoding: payload)
        let name = try #require(handshake.clientName)
        #expect(name.utf8.count <= ExtensionHandshake.maximumClientNameBytes)
        #expect(name.hasPrefix("ut_metadata&1e6:u\u{FFFD}"))
        #expect(try ExtensionHandshake(decoding: handshake.encoded()) == handshake)
    }
}
