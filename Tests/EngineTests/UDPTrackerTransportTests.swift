import Foundation
import Glibc
import Testing
import TorrentModel
import Tracker
import URing

@testable import Engine

/// Several torrents' tracker clients over one shared UDP socket, on a real ring, with the tests playing
/// the tracker (`FakeUDPTracker`): answers are routed by transaction id, ids are never shared, the
/// tracker's connection id serves every torrent, and a refusal reaches only the exchanges it concerns.
@Suite struct UDPTrackerTransportTests {
    static let second: UInt64 = 1_000_000_000
    static let connectionID: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]

    static func request(_ byte: UInt8) -> AnnounceRequest {
        AnnounceRequest(
            infoHash: InfoHash(Array(repeating: byte, count: 20))!,
            peerID: PeerID(Array("-PO0001-abcdefghijkl".utf8))!, port: 6881, leftBytes: 1000, event: .started,
            numberWanted: 50, key: 0x1234_5678)
    }

    static func client(
        _ ring: Ring, tenant: UInt16, seed: UInt64, _ transport: UDPTrackerTransport
    )
        -> TrackerClient
    {
        TrackerClient(
            ring: ring, tenant: tenant, seed: seed, resolver: HostResolver(waker: nil),
            udpTransport: transport
        ) { _ in }
    }

    /// Submits what was queued and hands the transport every completion that arrives within `milliseconds`.
    static func pump(
        _ ring: Ring, _ transport: UDPTrackerTransport, now: UInt64, milliseconds: Int = 50
    ) throws {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        repeat {
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(10))
            ring.drain { completion in
                if completion.slot.owner == UDPTrackerTransport.owner {
                    transport.handle(completion, now: now)
                }
            }
        } while ContinuousClock.now < deadline
    }

    /// The next datagram the tracker gets, with the port it came from.
    static func receive(_ tracker: FakeUDPTracker) throws -> (bytes: [UInt8], port: UInt16) {
        let bytes = try #require(tracker.receive(), "the tracker heard nothing")
        return (bytes, UInt16(bigEndian: tracker.client?.address.sin_port ?? 0))
    }

    static func interval(of finished: [(TrackerClient.ExchangeID, TrackerClient.Reply)]) -> Int64? {
        guard finished.count == 1, case .announced(let response) = finished[0].1 else { return nil }
        return response.intervalSeconds
    }

    @Test func torrentsShareOneSocketAndEachGetsItsOwnAnswer() throws {
        let ring = try Ring()
        let tracker = try FakeUDPTracker()
        var logged: [String] = []
        let transport = UDPTrackerTransport(ring: ring) { logged.append($0) }
        let first = Self.client(ring, tenant: 1, seed: 1, transport)
        let second = Self.client(ring, tenant: 2, seed: 2, transport)
        defer {
            first.closeAll()
            second.closeAll()
            transport.shutDown()
        }
        let url = try TrackerURL("udp://127.0.0.1:\(tracker.port)/announce")

        _ = first.begin(.announce(Self.request(0xA1)), url: url, now: 0)
        _ = second.begin(.announce(Self.request(0xB2)), url: url, now: 0)
        try Self.pump(ring, transport, now: 0)
        let connects = [try Self.receive(tracker), try Self.receive(tracker)]
        #expect(connects.allSatisfy { $0.bytes.count == 16 })
        #expect(connects[0].port == connects[1].port, "two sockets")
        #expect(transport.socketCount == 1)

        // The tracker grants one connection id to our address; each connect answer goes to its asker.
        for connect in connects { tracker.send([0, 0, 0, 0] + connect.bytes[12..<16] + Self.connectionID) }
        try Self.pump(ring, transport, now: Self.second)
        let announces = [try Self.receive(tracker), try Self.receive(tracker)]
        #expect(announces.allSatisfy { $0.bytes.count == 98 && Array($0.bytes[0..<8]) == Self.connectionID })
        #expect(Set(announces.map { $0.bytes[16] }) == [0xA1, 0xB2])

        // Answered in the other order, with an interval that tells the torrents apart.
        for announce in announces.reversed() {
            let tag: UInt8 = announce.bytes[16] == 0xA1 ? 1 : 2
            tracker.send(
                [0, 0, 0, 1] + announce.bytes[12..<16] + [0, 0, 0x07, tag] + [0, 0, 0, 0, 0, 0, 0, 0])
        }
        try Self.pump(ring, transport, now: Self.second)
        #expect(Self.interval(of: first.takeFinished()) == 0x0701)
        #expect(Self.interval(of: second.takeFinished()) == 0x0702)

        // A torrent added later skips the connect: the grant is the socket's, not one torrent's.
        let third = Self.client(ring, tenant: 3, seed: 3, transport)
        defer { third.closeAll() }
        _ = third.begin(.announce(Self.request(0xC3)), url: url, now: 10 * Self.second)
        try Self.pump(ring, transport, now: 10 * Self.second)
        let announce = try Self.receive(tracker)
        #expect(announce.bytes.count == 98 && Array(announce.bytes[0..<8]) == Self.connectionID)

        // An answer nobody waits for is logged and goes to no one.
        tracker.send(
            [0, 0, 0, 1] + announce.bytes[12..<16].map { $0 ^ 0xff } + Array(repeating: 0, count: 12))
        try Self.pump(ring, transport, now: 10 * Self.second)
        #expect(logged.contains { $0.contains("is not awaited") }, "\(logged)")
        #expect(third.takeFinished().isEmpty)
    }

    @Test func aTransactionIDAnotherTorrentWaitsForIsDrawnAgain() throws {
        let ring = try Ring()
        let tracker = try FakeUDPTracker()
        let transport = UDPTrackerTransport(ring: ring) { _ in }
        // The same seed: both draw the same first transaction id.
        let first = Self.client(ring, tenant: 1, seed: 7, transport)
        let second = Self.client(ring, tenant: 2, seed: 7, transport)
        defer {
            first.closeAll()
            second.closeAll()
            transport.shutDown()
        }
        let url = try TrackerURL("udp://127.0.0.1:\(tracker.port)/announce")
        _ = first.begin(.announce(Self.request(0xA1)), url: url, now: 0)
        _ = second.begin(.announce(Self.request(0xB2)), url: url, now: 0)
        try Self.pump(ring, transport, now: 0)
        let connects = [try Self.receive(tracker), try Self.receive(tracker)]
        #expect(connects[0].bytes[12..<16] != connects[1].bytes[12..<16])
        for connect in connects { tracker.send([0, 0, 0, 0] + connect.bytes[12..<16] + Self.connectionID) }
        try Self.pump(ring, transport, now: Self.second)
        // Both connects were answered, so both announce.
        let announces = [try Self.receive(tracker), try Self.receive(tracker)]
        #expect(Set(announces.map { $0.bytes[16] }) == [0xA1, 0xB2])
    }

    @Test func aRefusingTrackerFailsItsExchangesAtOnceAndNoOthers() throws {
        let ring = try Ring()
        let live = try FakeUDPTracker()
        var closed: FakeUDPTracker? = try FakeUDPTracker()
        let deadPort = closed!.port
        closed = nil
        let transport = UDPTrackerTransport(ring: ring) { _ in }
        let asking = Self.client(ring, tenant: 1, seed: 1, transport)
        let other = Self.client(ring, tenant: 2, seed: 2, transport)
        defer {
            asking.closeAll()
            other.closeAll()
            transport.shutDown()
        }
        let id = asking.begin(
            .announce(Self.request(0xA1)), url: try TrackerURL("udp://127.0.0.1:\(deadPort)/announce"), now: 0
        )
        _ = other.begin(
            .announce(Self.request(0xB2)), url: try TrackerURL("udp://127.0.0.1:\(live.port)/announce"),
            now: 0)
        try Self.pump(ring, transport, now: 0, milliseconds: 300)
        let finished = asking.takeFinished()
        #expect(finished.count == 1 && finished.first?.0 == id)
        guard case .failed(.system(_, let errno))? = finished.first?.1 else {
            Issue.record("expected a refusal, got \(finished)")
            return
        }
        #expect(errno == .connectionRefused)
        // The other tracker's exchange goes on: its connect arrived and it still waits for the answer.
        let connect = try Self.receive(live)
        #expect(connect.bytes.count == 16)
        #expect(other.takeFinished().isEmpty)
        live.send([0, 0, 0, 0] + connect.bytes[12..<16] + Self.connectionID)
        try Self.pump(ring, transport, now: Self.second)
        #expect(try Self.receive(live).bytes.count == 98)
    }

    /// The engine's way: every torrent on a reactor asks its tracker through the reactor's one socket,
    /// and each gets the answer to its own announce.
    @Test func torrentsOnAReactorAnnounceFromOneSocket() throws {
        let directory = try EngineTests.temporaryDirectory("udp-trackers")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tracker = try FakeUDPTracker()
        let count = 20
        let sessions = try (0..<count).map { index in
            var options = ManyTorrentsTests.seedingOptions(directory)
            options.trackers = [["udp://127.0.0.1:\(tracker.port)/announce"]]
            return DownloadSession(
                metainfo: try EngineTests.makeTorrent(
                    named: "u\(index).bin", size: 20_000 + 700 * index, seed: UInt8(index), in: directory),
                options: options)
        }
        let reactor = try Reactor()
        for session in sessions { reactor.host(session) }
        var ports: Set<UInt16> = []
        var announced: Set<[UInt8]> = []
        var sockets = 0
        // The tracker's side, between the reactor's loops: connects get the connection id, announces an
        // answer with one peer.
        func serve() {
            while let datagram = tracker.receive(within: 0) {
                ports.insert(UInt16(bigEndian: tracker.client?.address.sin_port ?? 0))
                if datagram.count == 16 {
                    tracker.send([0, 0, 0, 0] + datagram[12..<16] + Self.connectionID)
                } else if datagram.count == 98 {
                    announced.insert(Array(datagram[16..<36]))
                    tracker.send(
                        [0, 0, 0, 1] + datagram[12..<16] + [0, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 1]
                            + [127, 0, 0, 1, 0x1a, 0xe1])
                }
            }
        }
        try ManyTorrentsTests.run(reactor) {
            serve()
            sockets = reactor.udpTrackers.socketCount
            return announced.count == count
                && sessions.allSatisfy { $0.trackers?.state.hasPrefix("tracker: ok") == true }
        }
        #expect(ports.count == 1, "\(ports)")
        #expect(sockets == 1)
        #expect(Set(sessions.map { $0.metainfo.wireInfoHash.bytes }) == announced)
        for session in sessions { session.stop() }
        try ManyTorrentsTests.run(reactor) {
            serve()
            return sessions.allSatisfy { $0.outcome != nil }
        }
    }
}
