import Testing
import TorrentModel

@testable import Tracker

/// Packet layouts from the tables in BEP 15.
@Suite struct UDPPacketVectorTests {
    static let request = AnnounceRequest(
        infoHash: id20("000102030405060708090a0b0c0d0e0f10111213"),
        peerID: PeerID(ascii("-PO0001-abcdefghijkl"))!,
        port: 6881, uploadedBytes: 3, downloadedBytes: 1, leftBytes: 2, event: .started, key: 0xDEAD_BEEF)

    @Test func connectRequest() {
        #expect(
            UDPTrackerPacket.connectRequest(transactionID: 0x1234_5678)
                == bytes("00000417 27101980 00000000 12345678"))
    }

    @Test func announceRequestIPv4() {
        var request = Self.request
        request.ip = "10.0.0.2"
        let packet = UDPTrackerPacket.announceRequest(
            connectionID: 0x0102_0304_0506_0708, transactionID: 0xAABB_CCDD, request: request, family: .ipv4)
        let expected =
            bytes("0102030405060708 00000001 aabbccdd")
            + bytes("000102030405060708090a0b0c0d0e0f10111213") + ascii("-PO0001-abcdefghijkl")
            + bytes("0000000000000001 0000000000000002 0000000000000003")  // downloaded, left, uploaded
            + bytes("00000002 0a000002 deadbeef ffffffff 1ae1")  // started, ip, key, num_want -1, port
        #expect(packet.count == 98)
        #expect(packet == expected)
    }

    @Test func announceRequestIPv6LeavesTheAddressZero() {
        var request = Self.request
        request.ip = "10.0.0.2"
        request.numberWanted = 200
        request.event = .completed
        let packet = UDPTrackerPacket.announceRequest(
            connectionID: 1, transactionID: 2, request: request, family: .ipv6)
        #expect(Array(packet[80..<98]) == bytes("00000001 00000000 deadbeef 000000c8 1ae1"))
    }

    @Test func scrapeRequest() {
        let packet = UDPTrackerPacket.scrapeRequest(
            connectionID: 0x0102_0304_0506_0708, transactionID: 9,
            infoHashes: [repeated20("a"), repeated20("b")])
        #expect(
            packet == bytes("0102030405060708 00000002 00000009") + repeated20("a").bytes
                + repeated20("b").bytes)
    }

    @Test func responses() throws {
        #expect(
            try UDPTrackerResponse.decode(bytes("00000000 12345678 0102030405060708"), family: .ipv4)
                == .connect(transactionID: 0x1234_5678, connectionID: 0x0102_0304_0506_0708))
        let announce = try UDPTrackerResponse.decode(
            bytes("00000001 00000007 00000708 00000005 00000003 0a000001 1ae1 c0a80001 0050"), family: .ipv4)
        #expect(
            announce
                == .announce(
                    transactionID: 7,
                    response: AnnounceResponse(
                        intervalSeconds: 1800, seederCount: 3, leecherCount: 5,
                        peers: [
                            TrackerPeer(host: .ipv4(IPv4Address(0x0a00_0001)), port: 6881),
                            TrackerPeer(host: .ipv4(IPv4Address(0xc0a8_0001)), port: 80),
                        ])))
        let v6 = try UDPTrackerResponse.decode(
            bytes("00000001 00000007 00000708 00000000 00000001 20010db8000000000000000000000001 1ae1"),
            family: .ipv6)
        guard case .announce(_, let v6Response) = v6 else {
            Issue.record("not an announce")
            return
        }
        #expect(v6Response.peers.map(\.description) == ["[2001:db8::1]:6881"])
        #expect(
            try UDPTrackerResponse.decode(
                bytes("00000002 00000004 0000000b 000035cc 00000013"), family: .ipv4)
                == .scrape(
                    transactionID: 4,
                    counts: [.init(seederCount: 11, completedCount: 13772, leecherCount: 19)]))
        #expect(
            try UDPTrackerResponse.decode(bytes("00000003 00000004") + ascii("bad torrent"), family: .ipv4)
                == .error(transactionID: 4, message: "bad torrent"))
    }

    @Test func malformedResponses() {
        func decode(
            _ hex: String, family: AddressFamily = .ipv4, limits: TrackerLimits = TrackerLimits()
        ) -> TrackerError? {
            trackerError { try UDPTrackerResponse.decode(bytes(hex), family: family, limits: limits) }
        }
        #expect(decode("000000") == .udpPacketTooShort(action: 0, byteCount: 3, minimum: 8))
        #expect(decode("00000000 00000001 0102") == .udpPacketTooShort(action: 0, byteCount: 10, minimum: 16))
        #expect(
            decode("00000001 00000001 00000708 0000")
                == .udpPacketTooShort(action: 1, byteCount: 14, minimum: 20))
        #expect(
            decode("00000001 00000001 00000708 00000000 00000000 0a000001 1a")
                == .compactLengthNotMultiple(key: "peers", byteCount: 5, stride: 6))
        #expect(
            decode("00000001 00000001 00000708 00000000 00000000 0a000001 1ae1", family: .ipv6)
                == .compactLengthNotMultiple(key: "peers", byteCount: 6, stride: 18))
        #expect(
            decode(
                "00000001 00000001 00000708 00000000 00000000 0a0000011ae1 0a0000021ae1",
                limits: TrackerLimits(maxPeerCount: 1)) == .tooManyPeers(count: 2, limit: 1))
        #expect(
            decode("00000002 00000001 0000000b 0000")
                == .compactLengthNotMultiple(key: "scrape", byteCount: 6, stride: 12))
        #expect(decode("00000009 00000001") == .udpUnknownAction(9))
    }

    @Test func absurdUDPIntervalIsClamped() throws {
        let limits = TrackerLimits()
        guard
            case .announce(_, let zero) = try UDPTrackerResponse.decode(
                bytes("00000001 00000001 00000000 00000000 00000000"), family: .ipv4),
            case .announce(_, let negative) = try UDPTrackerResponse.decode(
                bytes("00000001 00000001 ffffffff 00000000 00000000"), family: .ipv4)
        else {
            Issue.record("not announces")
            return
        }
        #expect(zero.intervalSeconds == limits.intervalSecondsRange.lowerBound)
        #expect(negative.intervalSeconds == limits.intervalSecondsRange.lowerBound)
    }
}

/// A UDP tracker played by the test: reads what the client sent and answers it.
struct FakeUDPTracker {
    var connectionID: UInt64 = 0x1122_3344_5566_7788

    static func transactionID(of datagram: [UInt8]) -> UInt32 {
        datagram[12..<16].reduce(0) { $0 << 8 | UInt32($1) }
    }

    static func isConnect(_ datagram: [UInt8]) -> Bool {
        datagram.count == 16 && Array(datagram[0..<8]) == bytes("0000041727101980")
    }

    func connectReply(to datagram: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        UDPTrackerPacket.append(UInt32(0), to: &out)
        UDPTrackerPacket.append(Self.transactionID(of: datagram), to: &out)
        UDPTrackerPacket.append(connectionID, to: &out)
        return out
    }

    func announceReply(to datagram: [UInt8], peers: [UInt8] = [10, 0, 0, 1, 0x1a, 0xe1]) -> [UInt8] {
        var out: [UInt8] = []
        UDPTrackerPacket.append(UInt32(1), to: &out)
        UDPTrackerPacket.append(Self.transactionID(of: datagram), to: &out)
        UDPTrackerPacket.append(UInt32(1800), to: &out)
        UDPTrackerPacket.append(UInt32(2), to: &out)
        UDPTrackerPacket.append(UInt32(4), to: &out)
        return out + peers
    }
}

/// The only datagram among `actions`, or a recorded issue.
func sentDatagram(_ actions: [UDPTrackerClient.Action]) -> [UInt8] {
    let sent = actions.compactMap { action -> [UInt8]? in
        if case .send(let datagram) = action { datagram } else { nil }
    }
    #expect(sent.count == 1, "expected one datagram in \(actions)")
    return sent.first ?? []
}

func nextTimeout(_ actions: [UDPTrackerClient.Action]) -> Instant? {
    actions.lazy.compactMap { action -> Instant? in
        if case .nextTimeout(let at) = action { at } else { nil }
    }.first
}

@Suite struct UDPTrackerClientTests {
    static let request = UDPPacketVectorTests.request
    let tracker = FakeUDPTracker()

    func client(seed: UInt64 = 1) -> UDPTrackerClient {
        UDPTrackerClient(family: .ipv4, random: SeededRandom(seed: seed))
    }

    @Test func connectThenAnnounce() {
        var client = client()
        let start = client.start(.announce(Self.request), now: .seconds(0))
        let connect = sentDatagram(start)
        #expect(FakeUDPTracker.isConnect(connect))
        #expect(nextTimeout(start) == .seconds(15))
        #expect(client.isBusy)

        let afterConnect = client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1))
        let announce = sentDatagram(afterConnect)
        #expect(announce.count == 98)
        #expect(Array(announce[0..<12]) == bytes("1122334455667788 00000001"))
        #expect(FakeUDPTracker.transactionID(of: announce) != FakeUDPTracker.transactionID(of: connect))
        #expect(nextTimeout(afterConnect) == .seconds(16))

        let done = client.receive(datagram: tracker.announceReply(to: announce), now: .seconds(2))
        #expect(
            done == [
                .announced(
                    AnnounceResponse(
                        intervalSeconds: 1800, seederCount: 4, leecherCount: 2,
                        peers: [TrackerPeer(host: .ipv4(IPv4Address(0x0a00_0001)), port: 6881)]))
            ])
        #expect(!client.isBusy)
        #expect(client.tick(now: .seconds(100)).isEmpty)
        #expect(
            client.receive(datagram: tracker.announceReply(to: announce), now: .seconds(3)) == [
                .ignored(.noRequestInFlight)
            ])
    }

    @Test func wrongTransactionIDAndActionAreIgnored() {
        var client = client()
        let connect = sentDatagram(client.start(.announce(Self.request), now: .seconds(0)))
        let id = FakeUDPTracker.transactionID(of: connect)
        var forged = tracker.connectReply(to: connect)
        forged[7] ^= 1
        #expect(
            client.receive(datagram: forged, now: .seconds(1)) == [
                .ignored(.wrongTransactionID(expected: id, received: id ^ 1))
            ])
        let wrongAction = tracker.announceReply(to: connect)
        #expect(
            client.receive(datagram: wrongAction, now: .seconds(1)) == [
                .ignored(.unexpectedAction(expected: 0, received: 1))
            ])
        #expect(client.receive(datagram: [0, 0, 0], now: .seconds(1)) == [.ignored(.tooShort(byteCount: 3))])
        // The exchange is intact: the genuine answer still works.
        let announce = sentDatagram(
            client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(2)))
        #expect(announce.count == 98)
    }

    @Test func connectRetransmissionScheduleThenGiveUp() {
        // BEP 15 "Connect times out": 0, 15, 45, 105, ... with waits of 15 × 2^n, n up to 8.
        var client = client()
        var actions = client.start(.announce(Self.request), now: .seconds(0))
        var sendTimes: [UInt64] = [0]
        let firstID = FakeUDPTracker.transactionID(of: sentDatagram(actions))
        var now: UInt64 = 0
        while let deadline = nextTimeout(actions) {
            // Just before the deadline nothing happens.
            #expect(
                client.tick(now: Instant(nanoseconds: deadline.nanoseconds - 1)) == [
                    .nextTimeout(at: deadline)
                ])
            now = deadline.nanoseconds / 1_000_000_000
            actions = client.tick(now: deadline)
            if actions.contains(where: { if case .send = $0 { true } else { false } }) {
                let datagram = sentDatagram(actions)
                #expect(FakeUDPTracker.isConnect(datagram))
                #expect(FakeUDPTracker.transactionID(of: datagram) == firstID)
                sendTimes.append(now)
            }
        }
        #expect(sendTimes == [0, 15, 45, 105, 225, 465, 945, 1905, 3825])
        #expect(now == 3825 + 3840)
        #expect(actions == [.failed(.udpTimedOut(sendCount: 9))])
        #expect(!client.isBusy)
    }

    @Test func announceTimeoutReconnectsOnceTheConnectionIDExpires() {
        // BEP 15 "Announce times out": the connection id from t=1 is good until t=61, so the third
        // retransmission (t=106 here, since we announce as soon as the id arrives) must reconnect.
        var client = client()
        let connect = sentDatagram(client.start(.announce(Self.request), now: .seconds(0)))
        var actions = client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1))
        var kinds: [(UInt64, String)] = [(1, "announce")]
        for _ in 0..<4 {
            guard let deadline = nextTimeout(actions) else { break }
            actions = client.tick(now: deadline)
            kinds.append(
                (
                    deadline.nanoseconds / 1_000_000_000,
                    FakeUDPTracker.isConnect(sentDatagram(actions)) ? "connect" : "announce"
                ))
        }
        #expect(kinds.map(\.0) == [1, 16, 46, 106, 226])
        #expect(kinds.map(\.1) == ["announce", "announce", "announce", "connect", "connect"])
    }

    /// A tracker that answers every connect and never the announce cannot keep the exchange open: the
    /// attempts count on across the reconnects, and it gives up as it would without the connects.
    @Test func answeringOnlyConnectsStillTimesOut() {
        var client = client()
        var actions = client.start(.announce(Self.request), now: .seconds(0))
        var failure: [UDPTrackerClient.Action] = []
        for _ in 0..<100 {
            if actions.contains(where: { if case .send = $0 { true } else { false } }) {
                let datagram = sentDatagram(actions)
                if FakeUDPTracker.isConnect(datagram) {
                    let now =
                        nextTimeout(actions).map { Instant(nanoseconds: $0.nanoseconds - 1) } ?? .seconds(0)
                    actions = client.receive(datagram: tracker.connectReply(to: datagram), now: now)
                    continue
                }
            }
            guard let deadline = nextTimeout(actions) else {
                failure = actions
                break
            }
            actions = client.tick(now: deadline)
        }
        #expect(failure.contains { if case .failed(.udpTimedOut) = $0 { true } else { false } }, "\(failure)")
        #expect(!client.isBusy)
    }

    @Test func connectionIDIsReusedForOneMinute() {
        var client = client()
        let connect = sentDatagram(client.start(.announce(Self.request), now: .seconds(0)))
        let announce = sentDatagram(
            client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1)))
        _ = client.receive(datagram: tracker.announceReply(to: announce), now: .seconds(2))

        let justInTime = Instant(nanoseconds: 61_000_000_000 - 1)
        #expect(client.usableConnectionID(now: justInTime) == tracker.connectionID)
        let reused = sentDatagram(client.start(.announce(Self.request), now: justInTime))
        #expect(reused.count == 98)
        #expect(Array(reused[0..<8]) == bytes("1122334455667788"))
        client.cancel()

        #expect(client.usableConnectionID(now: .seconds(61)) == nil)
        #expect(
            FakeUDPTracker.isConnect(sentDatagram(client.start(.announce(Self.request), now: .seconds(61)))))
    }

    @Test func errorPacketFailsTheExchange() {
        var client = client()
        let connect = sentDatagram(client.start(.announce(Self.request), now: .seconds(0)))
        let announce = sentDatagram(
            client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1)))
        var error: [UInt8] = []
        UDPTrackerPacket.append(UInt32(3), to: &error)
        UDPTrackerPacket.append(FakeUDPTracker.transactionID(of: announce), to: &error)
        error += ascii("unregistered torrent")
        #expect(
            client.receive(datagram: error, now: .seconds(2)) == [
                .failed(.trackerFailure(reason: "unregistered torrent"))
            ])
        #expect(!client.isBusy)
    }

    @Test func malformedAnswerWithTheRightIDFails() {
        var client = client()
        let connect = sentDatagram(client.start(.announce(Self.request), now: .seconds(0)))
        let announce = sentDatagram(
            client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1)))
        let broken = tracker.announceReply(to: announce, peers: [1, 2, 3])
        #expect(
            client.receive(datagram: broken, now: .seconds(2)) == [
                .failed(.compactLengthNotMultiple(key: "peers", byteCount: 3, stride: 6))
            ])
    }

    @Test func scrapeMapsCountsToInfoHashes() {
        var client = client()
        let hashes = [repeated20("a"), repeated20("b")]
        let connect = sentDatagram(client.start(.scrape(hashes), now: .seconds(0)))
        let scrape = sentDatagram(
            client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1)))
        #expect(scrape.count == 16 + 40)
        var reply: [UInt8] = []
        UDPTrackerPacket.append(UInt32(2), to: &reply)
        UDPTrackerPacket.append(FakeUDPTracker.transactionID(of: scrape), to: &reply)
        for value: UInt32 in [1, 2, 3, 4, 5, 6] { UDPTrackerPacket.append(value, to: &reply) }
        #expect(
            client.receive(datagram: reply, now: .seconds(2)) == [
                .scraped([
                    ScrapeEntry(infoHash: hashes[0], seederCount: 1, completedCount: 2, leecherCount: 3),
                    ScrapeEntry(infoHash: hashes[1], seederCount: 4, completedCount: 5, leecherCount: 6),
                ])
            ])
        let tooMany = Array(repeating: repeated20("c"), count: 75)
        #expect(
            client.start(.scrape(tooMany), now: .seconds(3)) == [
                .failed(.tooManyInfoHashes(count: 75, limit: 74))
            ])
    }

    @Test func ipv6TrackerAnswersWithEighteenBytePeers() {
        var client = UDPTrackerClient(family: .ipv6, random: SeededRandom(seed: 3))
        let connect = sentDatagram(client.start(.announce(Self.request), now: .seconds(0)))
        let announce = sentDatagram(
            client.receive(datagram: tracker.connectReply(to: connect), now: .seconds(1)))
        let reply = tracker.announceReply(to: announce, peers: bytes("20010db8000000000000000000000002 1ae2"))
        guard case .announced(let response) = client.receive(datagram: reply, now: .seconds(2)).first else {
            Issue.record("no announce result")
            return
        }
        #expect(response.peers.map(\.description) == ["[2001:db8::2]:6882"])
    }

    @Test func transactionIDsComeFromTheSeed() {
        var a = client(seed: 42)
        var b = client(seed: 42)
        var c = client(seed: 43)
        let first = sentDatagram(a.start(.announce(Self.request), now: .seconds(0)))
        #expect(first == sentDatagram(b.start(.announce(Self.request), now: .seconds(0))))
        #expect(first != sentDatagram(c.start(.announce(Self.request), now: .seconds(0))))
    }
}
