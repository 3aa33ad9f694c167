import Bencode
import Testing
import TorrentModel

@testable import DHT

/// The bencoded example packets of BEP 5, decoded and re-encoded byte for byte.
@Suite struct KRPCVectorTests {
    static let querier: NodeID = asciiID("abcdefghij0123456789")
    static let target: NodeID = asciiID("mnopqrstuvwxyz123456")

    static func roundTrip(_ text: String, _ expected: KRPCMessage) {
        let decoded = try? KRPCMessage.decode(ascii(text))
        #expect(decoded == expected)
        #expect(expected.encoded() == ascii(text))
    }

    @Test func pingQueryAndResponse() {
        Self.roundTrip(
            "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
            KRPCMessage(transactionID: ascii("aa"), body: .query(.ping(sender: Self.querier))))
        Self.roundTrip(
            "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
            KRPCMessage(transactionID: ascii("aa"), body: .response(KRPCResponse(sender: Self.target))))
    }

    /// Keys out of order, as some clients send them, are read all the same.
    @Test func unsortedKeysAreAccepted() {
        #expect(
            (try? KRPCMessage.decode(ascii("d1:y1:q1:t2:aa1:q4:ping1:ad2:id20:abcdefghij0123456789ee")))
                == KRPCMessage(transactionID: ascii("aa"), body: .query(.ping(sender: Self.querier))))
        #expect(
            (try? KRPCMessage.decode(ascii("d1:y1:q1:t2:aa1:q4:ping1:t2:bb1:ad2:id20:abcdefghij0123456789ee")))
                == nil)
    }

    @Test func findNodeQuery() {
        Self.roundTrip(
            "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
            KRPCMessage(
                transactionID: ascii("aa"),
                body: .query(.findNode(sender: Self.querier, target: Self.target, want: []))))
    }

    @Test func getPeersQueryAndResponseWithPeers() {
        Self.roundTrip(
            "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
            KRPCMessage(
                transactionID: ascii("aa"),
                body: .query(
                    .getPeers(sender: Self.querier, infoHash: asciiID("mnopqrstuvwxyz123456"), want: []))))
        let peers = [DHTEndpoint(compact: ascii("axje.u"))!, DHTEndpoint(compact: ascii("idhtnm"))!]
        #expect(peers[0] == endpoint(97, 120, 106, 101, port: 0x2e75))
        Self.roundTrip(
            "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
            KRPCMessage(
                transactionID: ascii("aa"),
                body: .response(KRPCResponse(sender: Self.querier, values: peers, token: ascii("aoeusnth")))))
    }

    /// BEP 5's examples abbreviate compact node info to "def456..." (9 bytes), which is not a whole
    /// number of 26-byte entries.
    @Test func abbreviatedNodesAreRejected() {
        let examples = [
            "d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re",
            "d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re",
        ]
        for example in examples {
            #expect(throws: KRPCDecodingError(.malformedCompactNodes(key: "nodes"))) {
                try KRPCMessage.decode(ascii(example))
            }
        }
    }

    @Test func announcePeerQuery() {
        Self.roundTrip(
            "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
            KRPCMessage(
                transactionID: ascii("aa"),
                body: .query(
                    .announcePeer(
                        sender: Self.querier, infoHash: asciiID("mnopqrstuvwxyz123456"), port: 6881,
                        impliedPort: false,
                        token: ascii("aoeusnth")))))
    }

    @Test func errorMessage() {
        Self.roundTrip(
            "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
            KRPCMessage(
                transactionID: ascii("aa"), body: .error(code: 201, message: ascii("A Generic Error Ocurred"))
            ))
    }
}

/// Extensions (BEP 32, 42, 43, implied_port) and the decoder's limits.
@Suite struct KRPCCodecTests {
    static let id: NodeID = asciiID("abcdefghij0123456789")

    @Test func extensionsRoundTrip() throws {
        let v6 = DHTEndpoint(address: .v6(high: 0x2001_0db8_0000_0000, low: 1), port: 6881)
        let messages = [
            KRPCMessage(
                transactionID: [0, 1],
                body: .query(.findNode(sender: Self.id, target: Self.id, want: [.ipv4, .ipv6])),
                isReadOnly: true),
            KRPCMessage(
                transactionID: [9],
                body: .query(
                    .announcePeer(
                        sender: Self.id, infoHash: asciiID("mnopqrstuvwxyz123456"), port: 1,
                        impliedPort: true, token: [1]))),
            KRPCMessage(
                transactionID: [],
                body: .response(
                    KRPCResponse(
                        sender: Self.id, nodes: [DHTNodeInfo(id: Self.id, endpoint: endpoint(1, 2, 3, 4))],
                        nodes6: [DHTNodeInfo(id: Self.id, endpoint: v6)], values: [endpoint(5, 6, 7, 8), v6],
                        token: [7])),
                requesterEndpoint: endpoint(124, 31, 75, 21, port: 1)),
            KRPCMessage(
                transactionID: [3, 4],
                body: .query(
                    .getPeers(sender: Self.id, infoHash: asciiID("mnopqrstuvwxyz123456"), want: [.ipv6])),
                requesterEndpoint: v6, isReadOnly: true),
            KRPCMessage(
                transactionID: [5], body: .error(code: KRPCErrorCode.protocolError, message: ascii("no"))),
        ]
        for message in messages {
            #expect(try KRPCMessage.decode(message.encoded()) == message)
            // Keys written in BEP 3's order: the strict decoder (unsorted keys refused) takes it too.
            #expect(throws: Never.self) { try BencodeDocument(bytes: message.encoded()) }
        }
        #expect(v6.compact.count == 18 && DHTEndpoint(compact: v6.compact) == v6)
    }

    @Test func wantIgnoresUnknownEntries() throws {
        let text =
            "d1:ad2:id20:abcdefghij01234567896:target20:abcdefghij01234567894:wantl2:n62:xxi1eee1:q9:find_node1:t1:x1:y1:qe"
        let message = try KRPCMessage.decode(ascii(text))
        #expect(message.body == .query(.findNode(sender: Self.id, target: Self.id, want: [.ipv6])))
    }

    @Test func impliedPortAllowsAMissingPort() throws {
        let text =
            "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:abcdefghij01234567895:token1:ke1:q13:announce_peer1:t1:x1:y1:qe"
        guard
            case .query(.announcePeer(_, _, let port, let implied, _)) = try KRPCMessage.decode(ascii(text))
                .body
        else {
            Issue.record("not an announce")
            return
        }
        #expect(port == 0 && implied)
    }

    @Test func malformedMessagesThrowTypedErrors() {
        let limits = KRPCLimits(maxTransactionIDBytes: 4, maxNodesPerList: 1, maxValues: 1, maxTokenBytes: 2)
        let node26 = String(repeating: "n", count: 26)
        let cases: [(String, KRPCDecodingError)] = [
            ("le", KRPCDecodingError(.notADictionary)),
            ("d1:y1:qe", KRPCDecodingError(.missingKey("t"))),
            ("d1:t5:abcde1:y1:qe", KRPCDecodingError(.transactionIDTooLong(byteCount: 5, limit: 4))),
            ("d1:t1:x1:y1:ze", KRPCDecodingError(.unknownMessageType)),
            ("d1:t1:x1:yi1ee", KRPCDecodingError(.invalidValue(key: "y"))),
            ("d1:rd2:id3:abce1:t1:x1:y1:re", KRPCDecodingError(.invalidValue(key: "id"))),
            (
                "d1:rd2:id20:abcdefghij01234567895:nodes52:\(node26)\(node26)e1:t1:x1:y1:re",
                KRPCDecodingError(.tooManyNodes(count: 2, limit: 1))
            ),
            (
                "d1:rd2:id20:abcdefghij01234567896:valuesl6:aaaaaa6:bbbbbbee1:t1:x1:y1:re",
                KRPCDecodingError(.tooManyValues(count: 2, limit: 1))
            ),
            (
                "d1:rd2:id20:abcdefghij01234567896:valuesl5:aaaaaee1:t1:x1:y1:re",
                KRPCDecodingError(.malformedPeer)
            ),
            (
                "d1:rd2:id20:abcdefghij01234567895:token3:abce1:t1:x1:y1:re",
                KRPCDecodingError(.tokenTooLong(byteCount: 3, limit: 2))
            ),
            ("d2:ip1:x1:t1:x1:y1:re", KRPCDecodingError(.invalidValue(key: "ip"))),
            ("d1:t1:x1:y1:ee", KRPCDecodingError(.missingKey("e"))),
            ("d1:ele1:t1:x1:y1:ee", KRPCDecodingError(.invalidValue(key: "e"))),
            // Queries with a sound envelope carry their transaction id, so that the node can answer.
            (
                "d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t1:x1:y1:qe",
                KRPCDecodingError(.unknownMethod, queryTransactionID: ascii("x"))
            ),
            (
                "d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:porti0e5:token1:ke1:q13:announce_peer1:t1:x1:y1:qe",
                KRPCDecodingError(.portOutOfRange, queryTransactionID: ascii("x"))
            ),
            ("d1:q4:ping1:t1:x1:y1:qe", KRPCDecodingError(.missingKey("a"), queryTransactionID: ascii("x"))),
        ]
        for (text, expected) in cases {
            #expect(throws: expected, "\(text)") { try KRPCMessage.decode(ascii(text), limits: limits) }
        }
    }

    @Test func oversizedAndNonBencodedDatagramsAreRejected() {
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 1501)
        #expect(throws: KRPCDecodingError(.datagramTooLarge(byteCount: 1501, limit: 1500))) {
            try KRPCMessage.decode(big)
        }
        #expect(
            throws: KRPCDecodingError(.bencode(.unexpectedByte(offset: 0, found: 0x78, expected: .value)))
        ) {
            try KRPCMessage.decode(ascii("x"))
        }
        // Nesting deeper than KRPC needs is refused by the bencode limits.
        #expect(throws: KRPCDecodingError.self) { try KRPCMessage.decode(ascii("d1:ald1:ald1:aleeeeee")) }
    }

    @Test func compactEndpointsAndNodeLists() {
        #expect(endpoint(10, 0, 0, 1, port: 0x1ae1).compact == bytes("0a000001 1ae1"))
        #expect(DHTEndpoint(compact: bytes("0a000001")) == nil)
        let v6 = bytes("20010db8000000000000000000000001 1ae1")
        #expect(DHTEndpoint(compact: v6)?.description == "[2001:db8:0:0:0:0:0:1]:6881")
        #expect(DHTNodeInfo.decodeCompactList(ArraySlice(repeating: 1, count: 38), family: .ipv6)?.count == 1)
        #expect(DHTNodeInfo.decodeCompactList(ArraySlice(repeating: 1, count: 38), family: .ipv4) == nil)
    }
}
