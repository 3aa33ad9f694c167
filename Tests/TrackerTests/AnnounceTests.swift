import Bencode
import Testing
import TorrentModel

@testable import Tracker

/// BEP 3 announce query strings, byte for byte.
@Suite struct AnnounceRequestTests {
    static let infoHash: InfoHash = id20("123456789abcdef123456789abcdef123456789a")
    static let peerID = PeerID(
        ascii("-PO0001-") + [0x00, 0x20, 0x25, 0x2b, 0x2f, 0x7e, 0x2d, 0x2e, 0x5f, 0xff, 0x41, 0x7a])!

    @Test func binaryInfoHashIsPercentEncodedByteByByte() {
        // 12 34 56 78 9a bc de f1 23 45 67 89 ab cd ef 12 34 56 78 9a: 0x34 '4', 0x56 'V', 0x78 'x',
        // 0x45 'E' and 0x67 'g' are unreserved; everything else is %XX.
        #expect(percentEncode(Self.infoHash.bytes) == "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A")
    }

    @Test func unreservedCharactersStayAndEverythingElseIsEscaped() {
        #expect(percentEncode(Self.peerID.bytes) == "-PO0001-%00%20%25%2B%2F~-._%FFAz")
        #expect(percentEncode(ascii("AZaz09-._~")) == "AZaz09-._~")
        #expect(
            percentEncode(ascii(" !*'();:@&=+$,/?#[]"))
                == "%20%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D")
    }

    @Test func fullQueryInOrder() {
        let request = AnnounceRequest(
            infoHash: Self.infoHash, peerID: Self.peerID, port: 6881, uploadedBytes: 1, downloadedBytes: 2,
            leftBytes: 3, event: .started, numberWanted: 50, key: 0xBEEF, trackerID: ascii("t/1"),
            ip: "10.0.0.9")
        #expect(
            request.queryString
                == "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"
                + "&peer_id=-PO0001-%00%20%25%2B%2F~-._%FFAz"
                + "&port=6881&uploaded=1&downloaded=2&left=3&compact=1&event=started&numwant=50"
                + "&key=0000BEEF&trackerid=t%2F1&ip=10.0.0.9")
    }

    @Test func regularAnnounceOmitsEventAndOptionalParameters() {
        let request = AnnounceRequest(infoHash: Self.infoHash, peerID: Self.peerID, port: 1, leftBytes: 0)
        let query = request.queryString
        #expect(!query.contains("event="))
        #expect(!query.contains("numwant="))
        #expect(!query.contains("key="))
        #expect(!query.contains("trackerid="))
        #expect(query.hasSuffix("&port=1&uploaded=0&downloaded=0&left=0&compact=1"))
    }

    @Test func trackerQueryIsKept() {
        let request = AnnounceRequest(
            infoHash: Self.infoHash, peerID: Self.peerID, port: 6881, leftBytes: 0, event: .stopped)
        let withPasskey = request.url(tracker: url("http://t.example:8080/announce.php?passkey=abc"))
        #expect(withPasskey.requestTarget == "/announce.php?passkey=abc&" + request.queryString)
        #expect(withPasskey.requestTarget.hasSuffix("&event=stopped"))
        let plain = request.url(tracker: url("https://t.example/announce"))
        #expect(plain.requestTarget == "/announce?" + request.queryString)
        let trailingAmpersand = request.url(tracker: url("http://t.example/a?x=1&"))
        #expect(trailingAmpersand.requestTarget == "/a?x=1&" + request.queryString)
        let emptyQuery = request.url(tracker: url("http://t.example/a?"))
        #expect(emptyQuery.requestTarget == "/a?" + request.queryString)
    }
}

/// Parsing announce answers shaped like real trackers' (BEP 3, 7, 23).
@Suite struct AnnounceResponseTests {
    @Test func compactPeersWithCountsAndMinInterval() throws {
        let peers: [UInt8] = [10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 200, 0xc8, 0xd5]
        let body = BencodeValue.dictionary([
            "complete": 5, "incomplete": 7, "interval": 1800, "min interval": 900, "peers": .bytes(peers),
        ]).encoded()
        let response = try AnnounceResponse(parsing: body)
        #expect(response.intervalSeconds == 1800)
        #expect(response.minimumIntervalSeconds == 900)
        #expect(response.seederCount == 5)
        #expect(response.leecherCount == 7)
        #expect(
            response.peers == [
                TrackerPeer(host: .ipv4(IPv4Address(0x0a00_0001)), port: 6881),
                TrackerPeer(host: .ipv4(IPv4Address(0xc0a8_01c8)), port: 51413),
            ])
        #expect(response.peers.map(\.description) == ["10.0.0.1:6881", "192.168.1.200:51413"])
        #expect(response.warningMessage == nil)
        #expect(response.skippedPeers.isEmpty)
    }

    @Test func handWrittenCompactResponse() throws {
        // As opentracker writes it: keys sorted, binary peers.
        let body =
            ascii("d8:completei1e10:incompletei0e8:intervali120e5:peers6:") + [127, 0, 0, 1, 0x1f, 0x90]
            + ascii("e")
        let response = try AnnounceResponse(parsing: body)
        #expect(response.peers == [TrackerPeer(host: .ipv4(IPv4Address(0x7f00_0001)), port: 8080)])
        #expect(response.intervalSeconds == 120)
    }

    @Test func dictionaryPeersWithIDsAndNames() throws {
        let id = Array(repeating: UInt8(ascii: "p"), count: 20)
        let body = BencodeValue.dictionary([
            "interval": 600,
            "tracker id": "abc",
            "warning message": "slow down",
            "peers": [
                ["ip": "10.1.2.3", "port": 6881, "peer id": .bytes(id)],
                ["ip": "2001:db8::1", "port": 6882],
                ["ip": "Peer.Example.org", "port": 6883],
            ],
        ]).encoded()
        let response = try AnnounceResponse(parsing: body)
        #expect(
            response.peers == [
                TrackerPeer(host: .ipv4(IPv4Address(0x0a01_0203)), port: 6881, peerID: PeerID(id)),
                TrackerPeer(host: .ipv6(IPv6Address(high: 0x2001_0db8_0000_0000, low: 1)), port: 6882),
                TrackerPeer(host: .name("peer.example.org"), port: 6883),
            ])
        #expect(response.trackerID == ascii("abc"))
        #expect(response.warningMessage == "slow down")
    }

    @Test func peers6AreEighteenBytesEach() throws {
        let v6 =
            bytes("20010db8000000000000000000000001 1ae1") + bytes("fe800000000000000000000000000002 0050")
        let body = BencodeValue.dictionary(["interval": 1800, "peers": .bytes([]), "peers6": .bytes(v6)])
            .encoded()
        let response = try AnnounceResponse(parsing: body)
        #expect(response.peers.map(\.description) == ["[2001:db8::1]:6881", "[fe80::2]:80"])
    }

    @Test func failureReasonIsAnError() {
        let body = ascii("d14:failure reason22:torrent not registerede")
        #expect(
            trackerError { try AnnounceResponse(parsing: body) }
                == .trackerFailure(reason: "torrent not registered"))
    }

    @Test func failureWinsEvenWithoutInterval() {
        let body = BencodeValue.dictionary(["failure reason": "banned", "peers": 3]).encoded()
        #expect(trackerError { try AnnounceResponse(parsing: body) } == .trackerFailure(reason: "banned"))
    }

    @Test func longFailureReasonIsCut() {
        let body = BencodeValue.dictionary(["failure reason": .bytes(Array(repeating: 0x41, count: 5000))])
            .encoded()
        guard case .trackerFailure(let reason) = trackerError({ try AnnounceResponse(parsing: body) }) else {
            Issue.record("expected a failure")
            return
        }
        #expect(reason.utf8.count == TrackerLimits().maxMessageBytes)
    }

    @Test func absurdIntervalsAreClamped() throws {
        let limits = TrackerLimits()
        let zero = try AnnounceResponse(
            parsing: BencodeValue.dictionary(["interval": 0, "min interval": -5]).encoded())
        #expect(zero.intervalSeconds == limits.intervalSecondsRange.lowerBound)
        #expect(zero.minimumIntervalSeconds == limits.intervalSecondsRange.lowerBound)
        let huge = try AnnounceResponse(
            parsing: BencodeValue.dictionary(["interval": .integer(Int64.max)]).encoded())
        #expect(huge.intervalSeconds == limits.intervalSecondsRange.upperBound)
        #expect(huge.peers.isEmpty)
    }

    @Test func portZeroAndBadEntriesAreSkippedWithReasons() throws {
        let body = BencodeValue.dictionary([
            "interval": 1800,
            "peers": [
                ["ip": "10.0.0.1", "port": 0],
                ["ip": "10.0.0.2", "port": 70000],
                ["ip": "not a host!", "port": 1],
                ["ip": "10.0.0.3", "port": 1, "peer id": "short"],
                "not a dictionary",
                ["port": 5],
                ["ip": "10.0.0.4", "port": 4],
            ],
        ]).encoded()
        let response = try AnnounceResponse(parsing: body)
        #expect(response.peers == [TrackerPeer(host: .ipv4(IPv4Address(0x0a00_0004)), port: 4)])
        #expect(
            response.skippedPeers == [
                .peerPortZero(peer: "10.0.0.1"), .valueOutOfRange(key: "port", value: 70000),
                .invalidPeerAddress("not a host!"), .invalidPeerID(byteCount: 5),
                .malformedPeerEntry(index: 4),
                .malformedPeerEntry(index: 5),
            ])
    }

    @Test func compactPortZeroIsSkipped() throws {
        let body = BencodeValue.dictionary([
            "interval": 1800, "peers": .bytes([1, 2, 3, 4, 0, 0, 1, 2, 3, 5, 0, 1]),
        ]).encoded()
        let response = try AnnounceResponse(parsing: body)
        #expect(response.peers.map(\.description) == ["1.2.3.5:1"])
        #expect(response.skippedPeers == [.peerPortZero(peer: "1.2.3.4")])
    }
}

/// Answers no honest tracker sends: each must be a typed error, never a trap.
@Suite struct HostileAnnounceResponseTests {
    func parse(_ value: BencodeValue, limits: TrackerLimits = TrackerLimits()) -> TrackerError? {
        trackerError { try AnnounceResponse(parsing: value.encoded(), limits: limits) }
    }

    @Test func oversizedBodyIsRefusedBeforeDecoding() {
        let limits = TrackerLimits(maxResponseBytes: 100)
        let body = Array(repeating: UInt8(ascii: "x"), count: 101)
        #expect(
            trackerError { try AnnounceResponse(parsing: body, limits: limits) }
                == .responseTooLarge(byteCount: 101, limit: 100))
    }

    @Test func truncatedAndGarbageBodies() {
        let full = BencodeValue.dictionary(["interval": 1800, "peers": .bytes([1, 2, 3, 4, 5, 6])]).encoded()
        for length in 0..<full.count {
            guard
                case .malformedBencode = trackerError({
                    try AnnounceResponse(parsing: Array(full.prefix(length)))
                })
            else {
                Issue.record("prefix of \(length) bytes was not reported as malformed bencode")
                continue
            }
        }
        #expect(trackerError { try AnnounceResponse(parsing: ascii("<html>502</html>")) } != nil)
    }

    @Test func rootMustBeADictionary() {
        #expect(parse(["interval", 5]) == .notADictionary(context: "response"))
    }

    @Test func wrongTypes() {
        #expect(
            parse(["interval": "1800"]) == .wrongType(key: "interval", expected: .integer, found: .byteString)
        )
        #expect(
            parse(["interval": 1, "peers": 5])
                == .wrongType(key: "peers", expected: .byteString, found: .integer))
        #expect(
            parse(["interval": 1, "peers6": []])
                == .wrongType(key: "peers6", expected: .byteString, found: .list))
        #expect(
            parse(["interval": 1, "complete": "x"])
                == .wrongType(key: "complete", expected: .integer, found: .byteString))
        #expect(parse(["interval": 1, "incomplete": -1]) == .valueOutOfRange(key: "incomplete", value: -1))
        #expect(
            parse(["interval": 1, "warning message": 3])
                == .wrongType(key: "warning message", expected: .byteString, found: .integer))
        #expect(
            parse(["failure reason": ["x"]])
                == .wrongType(key: "failure reason", expected: .byteString, found: .list))
        #expect(parse(["peers": .bytes([])]) == .missingKey("interval"))
    }

    @Test func oddCompactLengths() {
        #expect(
            parse(["interval": 1, "peers": .bytes([1, 2, 3, 4, 5])])
                == .compactLengthNotMultiple(key: "peers", byteCount: 5, stride: 6))
        #expect(
            parse(["interval": 1, "peers6": .bytes(Array(repeating: 1, count: 19))])
                == .compactLengthNotMultiple(key: "peers6", byteCount: 19, stride: 18))
    }

    @Test func absurdPeerCounts() {
        let limits = TrackerLimits(maxPeerCount: 3)
        let four = BencodeValue.bytes(Array(repeating: 1, count: 24))
        #expect(parse(["interval": 1, "peers": four], limits: limits) == .tooManyPeers(count: 4, limit: 3))
        let two = BencodeValue.bytes(Array(repeating: 1, count: 12))
        let v6 = BencodeValue.bytes(Array(repeating: 1, count: 36))
        #expect(
            parse(["interval": 1, "peers": two, "peers6": v6], limits: limits)
                == .tooManyPeers(count: 4, limit: 3))
        let list = BencodeValue.list(Array(repeating: ["ip": "1.1.1.1", "port": 1], count: 4))
        #expect(parse(["interval": 1, "peers": list], limits: limits) == .tooManyPeers(count: 4, limit: 3))
        #expect(
            parse(
                ["interval": 1, "peers": two, "peers6": .bytes(Array(repeating: 1, count: 18))],
                limits: limits) == nil)
    }

    @Test func overlongTrackerID() {
        let limits = TrackerLimits(maxTrackerIDBytes: 4)
        #expect(
            parse(["interval": 1, "tracker id": "12345"], limits: limits)
                == .trackerIDTooLong(byteCount: 5, limit: 4))
    }

    @Test func deepNestingIsRefused() {
        let body =
            ascii("d8:intervali1e5:peers") + Array(repeating: UInt8(ascii: "l"), count: 50)
            + Array(repeating: UInt8(ascii: "e"), count: 51)
        guard
            case .malformedBencode(.depthLimitExceeded) = trackerError({ try AnnounceResponse(parsing: body) }
            )
        else {
            Issue.record("deep nesting accepted")
            return
        }
    }
}
