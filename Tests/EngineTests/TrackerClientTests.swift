import Glibc
import Testing
import TorrentModel
import Tracker
import URing

@testable import Engine

/// `TrackerClient` on a real ring and real loopback sockets, with the tests playing the tracker. Time is
/// injected: the client is told `now`, so BEP 15's 15 s retransmission is checked without waiting 15 s.
@Suite struct TrackerClientTests {
    static let request = AnnounceRequest(
        infoHash: InfoHash(Array(repeating: 0xAB, count: 20))!,
        peerID: PeerID(Array("-PO0001-abcdefghijkl".utf8))!, port: 6881, leftBytes: 1000, event: .started,
        numberWanted: 50, key: 0x1234_5678)

    /// Submits what the client queued and hands it every completion that arrives within `milliseconds`.
    static func pump(_ ring: Ring, _ client: TrackerClient, now: UInt64, milliseconds: Int = 50) throws {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        repeat {
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(10))
            ring.drain { completion in
                if [TrackerClient.owner, UDPTrackerTransport.owner].contains(completion.slot.owner) {
                    client.handle(completion, now: now)
                }
            }
        } while ContinuousClock.now < deadline
    }

    /// Reads an HTTP request's head from `connection` (the client's side pumped meanwhile).
    static func readRequest(from connection: Int32, _ ring: Ring, _ client: TrackerClient) throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var request: [UInt8] = []
        while !request.ends(with: Array("\r\n\r\n".utf8)) {
            try pump(ring, client, now: 0, milliseconds: 10)
            var poller = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 2000) == 1 else { break }
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            request += buffer[..<count]
        }
        return String(decoding: request, as: UTF8.self)
    }

    static func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }

    @Test func udpRetransmitsAfterFifteenSecondsOfInjectedTimeThenAnnounces() throws {
        let ring = try Ring()
        let tracker = try FakeUDPTracker()
        var logged: [String] = []
        let client = TrackerClient(ring: ring, seed: 42, resolver: HostResolver(waker: nil)) {
            logged.append($0)
        }
        defer { client.closeAll() }
        let url = try TrackerURL("udp://127.0.0.1:\(tracker.port)/announce")
        let second: UInt64 = 1_000_000_000

        let id = client.begin(.announce(Self.request), url: url, now: 0)
        try Self.pump(ring, client, now: 0)
        let connect = try #require(tracker.receive(), "no connect request")
        #expect(connect.count == 16 && Self.bigEndian(connect[0..<8]) == UDPTrackerPacket.protocolID)

        // Silence. Nothing is sent again before 15 s have passed (BEP 15: 15 × 2^0)...
        client.tick(now: 15 * second - 1)
        try Self.pump(ring, client, now: 15 * second - 1)
        #expect(tracker.receive(within: 100) == nil, "retransmitted before 15 s")
        // ... and exactly the same request goes out at 15 s.
        client.tick(now: 15 * second)
        try Self.pump(ring, client, now: 15 * second)
        #expect(tracker.receive() == connect)
        // The next wait is 30 s (15 × 2^1): nothing at 44 s.
        client.tick(now: 44 * second)
        try Self.pump(ring, client, now: 44 * second)
        #expect(tracker.receive(within: 100) == nil, "retransmitted before 15 + 30 s")

        // A reply with the wrong transaction id is ignored (and logged); the right one goes on.
        let transaction = Array(connect[12..<16])
        let connectionID: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        tracker.send([0, 0, 0, 0] + transaction.map { $0 ^ 0xff } + connectionID)
        try Self.pump(ring, client, now: 44 * second)
        #expect(logged.contains { $0.contains("ignored a datagram: transaction id") }, "\(logged)")
        tracker.send([0, 0, 0, 0] + transaction + connectionID)
        try Self.pump(ring, client, now: 44 * second)
        let announce = try #require(tracker.receive(), "no announce after the connect answer")
        #expect(announce.count == 98)
        #expect(Array(announce[0..<8]) == connectionID)
        #expect(Array(announce[16..<36]) == Self.request.infoHash.bytes)

        // One peer, 127.0.0.1:6881, interval 1800.
        let reply: [UInt8] =
            [0, 0, 0, 1] + Array(announce[12..<16]) + [0, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 1]
            + [127, 0, 0, 1, 0x1a, 0xe1]
        tracker.send(reply)
        try Self.pump(ring, client, now: 45 * second)
        let finished = client.takeFinished()
        #expect(finished.count == 1 && finished.first?.0 == id)
        guard case .announced(let response)? = finished.first?.1 else {
            Issue.record("expected an announce answer, got \(finished)")
            return
        }
        #expect(response.intervalSeconds == 1800)
        #expect(response.peers == [TrackerPeer(host: .ipv4(IPv4Address(0x7f00_0001)), port: 6881)])
    }

    @Test func udpGivesUpAfterTheLastRetransmission() throws {
        let ring = try Ring()
        let tracker = try FakeUDPTracker()
        var limits = TrackerClient.Limits()
        limits.udp = UDPTrackerClient.Options(baseTimeoutSeconds: 15, maxRetransmissionExponent: 2)
        let client = TrackerClient(ring: ring, limits: limits, seed: 1, resolver: HostResolver(waker: nil)) {
            _ in
        }
        defer { client.closeAll() }
        let url = try TrackerURL("udp://127.0.0.1:\(tracker.port)/announce")
        let second: UInt64 = 1_000_000_000
        _ = client.begin(.scrape([Self.request.infoHash]), url: url, now: 0)
        // Sends at 0, 15 and 45 s; gives up at 45 + 60 s.
        for at: UInt64 in [0, 15, 45] {
            client.tick(now: at * second)
            try Self.pump(ring, client, now: at * second)
            #expect(tracker.receive() != nil, "no datagram at \(at) s")
        }
        client.tick(now: 105 * second - 1)
        #expect(client.takeFinished().isEmpty)
        client.tick(now: 105 * second)
        let finished = client.takeFinished()
        guard case .failed(.tracker(.udpTimedOut(let sendCount)))? = finished.first?.1 else {
            Issue.record("expected a UDP timeout, got \(finished)")
            return
        }
        #expect(sendCount == 3)
    }

    @Test func httpAnswerInChunksAndAfterARedirect() throws {
        let ring = try Ring()
        let listener = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        defer { close(listener) }
        let port = try Socket.localAddress(of: listener).port
        let client = TrackerClient(ring: ring, seed: 1, resolver: HostResolver(waker: nil)) { _ in }
        defer { client.closeAll() }
        let id = client.begin(
            .announce(Self.request), url: try TrackerURL("http://127.0.0.1:\(port)/a/announce?passkey=x"),
            now: 0)

        // First connection: a redirect; second: the answer, chunked, written in small pieces.
        var requests: [String] = []
        func text(_ string: String) -> [UInt8] { Array(string.utf8) }
        let answers: [[[UInt8]]] = [
            [text("HTTP/1.1 302 Found\r\nLocation: /b/announce?passkey=y\r\nContent-Length: 0\r\n\r\n")],
            [
                text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                text("10\r\nd8:intervali900e\r\n"), text("1\r\n5\r\n"),
                text("D\r\n:peers6:") + [0x7f, 0, 0, 1, 0x1a] + text("\r\n"),
                text("2\r\n") + [0xe1] + text("e\r\n0\r\n\r\n"),
            ],
        ]
        for answer in answers {
            try Self.pump(ring, client, now: 0)
            var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            try #require(poll(&waiting, 1, 2000) == 1, "the client did not connect")
            let connection = accept(listener, nil, nil)
            try #require(connection >= 0)
            defer { close(connection) }
            requests.append(try Self.readRequest(from: connection, ring, client))
            for piece in answer {
                _ = piece.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, 0) }
                try Self.pump(ring, client, now: 0, milliseconds: 20)
            }
        }
        #expect(requests.count == 2)
        #expect(requests.first?.hasPrefix("GET /a/announce?passkey=x&info_hash=%AB%AB") == true)
        #expect(requests.first?.contains("&numwant=50&key=12345678") == true, "\(requests)")
        #expect(requests.last?.hasPrefix("GET /b/announce?passkey=y HTTP/1.1") == true, "\(requests)")
        try Self.pump(ring, client, now: 0)
        let finished = client.takeFinished()
        #expect(finished.first?.0 == id)
        guard case .announced(let response)? = finished.first?.1 else {
            Issue.record("expected an announce answer, got \(finished)")
            return
        }
        #expect(response.intervalSeconds == 900)
        #expect(response.peers == [TrackerPeer(host: .ipv4(IPv4Address(0x7f00_0001)), port: 6881)])
    }

    /// A redirect to a host name not looked up yet waits for the lookup (ticks retry it) instead of
    /// failing with "lookup in progress".
    @Test func aRedirectToANewHostNameWaitsForItsLookup() throws {
        let ring = try Ring()
        let listener = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        defer { close(listener) }
        let port = try Socket.localAddress(of: listener).port
        let client = TrackerClient(ring: ring, seed: 1, resolver: HostResolver(waker: nil)) { _ in }
        defer { client.closeAll() }
        let id = client.begin(
            .announce(Self.request), url: try TrackerURL("http://127.0.0.1:\(port)/announce"), now: 0)
        let answers = [
            "HTTP/1.1 302 Found\r\nLocation: http://localhost:\(port)/moved\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nd8:intervali900ee",
        ]
        var requests: [String] = []
        for answer in answers {
            var connection: Int32 = -1
            for _ in 0..<100 where connection < 0 {
                client.tick(now: 0)
                try Self.pump(ring, client, now: 0, milliseconds: 20)
                var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                if poll(&waiting, 1, 0) == 1 { connection = accept(listener, nil, nil) }
            }
            try #require(connection >= 0, "the client did not connect: \(client.takeFinished())")
            defer { close(connection) }
            requests.append(try Self.readRequest(from: connection, ring, client))
            _ = Array(answer.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, 0) }
            try Self.pump(ring, client, now: 0, milliseconds: 20)
        }
        #expect(requests.last?.hasPrefix("GET /moved HTTP/1.1") == true, "\(requests)")
        try Self.pump(ring, client, now: 0)
        let finished = client.takeFinished()
        #expect(finished.first?.0 == id)
        guard case .announced(let response)? = finished.first?.1 else {
            Issue.record("expected an announce answer, got \(finished)")
            return
        }
        #expect(response.intervalSeconds == 900)
    }

    /// Closed with a receive on the ring, the client shuts the connection down and keeps the exchange
    /// (and the buffer the kernel may write into) until that receive completes.
    @Test func closingKeepsAnExchangeUntilItsOperationCompletes() throws {
        let ring = try Ring()
        let listener = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        defer { close(listener) }
        let port = try Socket.localAddress(of: listener).port
        let client = TrackerClient(ring: ring, seed: 1, resolver: HostResolver(waker: nil)) { _ in }
        _ = client.begin(
            .announce(Self.request), url: try TrackerURL("http://127.0.0.1:\(port)/announce"), now: 0)
        try Self.pump(ring, client, now: 0)
        var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        try #require(poll(&waiting, 1, 2000) == 1, "the client did not connect")
        let connection = accept(listener, nil, nil)
        try #require(connection >= 0)
        defer { close(connection) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        try Self.pump(ring, client, now: 0)
        #expect(recv(connection, &buffer, buffer.count, 0) > 0, "no request")
        try Self.pump(ring, client, now: 0)

        client.closeAll()
        #expect(client.hasOperationsInFlight, "the receive is still on the ring")
        try Self.pump(ring, client, now: 0)
        #expect(!client.hasOperationsInFlight)
        #expect(client.takeFinished().isEmpty, "a closed client reports nothing")
        #expect(recv(connection, &buffer, buffer.count, Int32(MSG_DONTWAIT)) == 0, "not shut down")
    }

    @Test func httpTimeoutIsEnforcedOnTheRing() throws {
        let ring = try Ring()
        let listener = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        defer { close(listener) }
        let port = try Socket.localAddress(of: listener).port
        var limits = TrackerClient.Limits()
        limits.httpTimeoutSeconds = 1
        let client = TrackerClient(ring: ring, limits: limits, seed: 1, resolver: HostResolver(waker: nil)) {
            _ in
        }
        defer { client.closeAll() }
        let started = ContinuousClock.now
        _ = client.begin(
            .announce(Self.request), url: try TrackerURL("http://127.0.0.1:\(port)/announce"), now: 0)
        // The kernel completes the connect from its backlog; nobody ever answers the request.
        var finished: [(TrackerClient.ExchangeID, TrackerClient.Reply)] = []
        while finished.isEmpty && ContinuousClock.now - started < .seconds(5) {
            try Self.pump(ring, client, now: 0)
            finished = client.takeFinished()
        }
        let elapsed = ContinuousClock.now - started
        guard case .failed(.timedOut(let stage, let seconds))? = finished.first?.1 else {
            Issue.record("expected a timeout, got \(finished)")
            return
        }
        #expect(stage.hasPrefix("HTTP response from 127.0.0.1:\(port)"), "\(stage)")
        #expect(seconds == 1)
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(3), "\(elapsed)")
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}

/// A socket of `type` bound to 127.0.0.1 on a port the kernel picks, and that port: for the trackers
/// tests play.
func loopbackSocket(_ type: __socket_type) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else {
        close(fd)
        throw FakeTrackerError.cannotBind
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A datagram socket on 127.0.0.1 playing the tracker; every wait on it is bounded.
final class FakeUDPTracker {
    let fd: Int32
    let port: UInt16
    var client: (address: sockaddr_in, length: socklen_t)?

    init() throws { (fd, port) = try loopbackSocket(SOCK_DGRAM) }

    deinit { close(fd) }

    /// The next datagram, or nil if none arrives within `milliseconds`.
    func receive(within milliseconds: Int32 = 2000) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = withUnsafeMutablePointer(to: &from) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, &buffer, buffer.count, 0, $0, &length)
            }
        }
        guard count > 0 else { return nil }
        client = (from, length)
        return Array(buffer[..<count])
    }

    func send(_ bytes: [UInt8]) {
        guard var address = client?.address, let length = client?.length else { return }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, length)
            }
        }
    }
}

enum FakeTrackerError: Error { case cannotBind }
