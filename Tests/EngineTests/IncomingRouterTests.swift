import Foundation
import Glibc
import PeerWire
import Synchronization
import Testing
import TorrentModel
import URing

@testable import Engine

/// The router on real loopback sockets: a peer is handed, unread, to the torrent its handshake names;
/// any other peer is closed.
@Suite struct IncomingRouterTests {
    static let known = InfoHash([UInt8](repeating: 0xab, count: 20))!
    static let unknown = InfoHash([UInt8](repeating: 0xcd, count: 20))!

    static func handshake(_ infoHash: InfoHash) -> [UInt8] {
        var bytes: [UInt8] = []
        Handshake(reserved: [], infoHash: infoHash, peerID: PeerID([UInt8](repeating: 7, count: 20))!)
            .encode(into: &bytes)
        return bytes
    }

    static func connect(to address: SocketAddress) throws -> Int32 {
        let fd = try Socket.makeTCP(family: address.family)
        try Socket.connectBlocking(fd, to: address)
        return fd
    }

    /// Waits until `fd` is closed by the other end or `seconds` pass.
    static func closedByPeer(_ fd: Int32, seconds: Double) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(seconds * 1000)) > 0 else { return false }
        var byte: UInt8 = 0
        // Closing a socket with unread input sends a reset rather than an orderly end.
        let count = recv(fd, &byte, 1, 0)
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }

    @Test func aHandshakeGoesToItsTorrentWithWhatWasReadAndStrangersAreClosed() throws {
        let listener = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        let address = try Socket.localAddress(of: listener)
        let directory = RouterDirectory()
        let inbox = IncomingInbox()
        directory.register(Self.known, inbox: inbox)
        let stop = Atomic<Bool>(false)
        // The reactor is made on its own thread, which then runs it with the router on its ring.
        let thread = try JoinableThread {
            guard let reactor = try? Reactor() else { return }
            reactor.startRouting(listenerFD: listener, directory: directory, log: { _ in })
            try? reactor.run(shouldStop: { false }, until: { stop.load(ordering: .relaxed) })
        }
        defer {
            stop.store(true, ordering: .relaxed)
            thread.join()
        }

        // Sent in two parts: the router must wait for the info hash, not guess from the prefix.
        let peer = try Self.connect(to: address)
        defer { close(peer) }
        let bytes = Self.handshake(Self.known)
        _ = bytes.withUnsafeBytes { send(peer, $0.baseAddress, 30, 0) }
        usleep(150_000)
        var routed: [RoutedConnection] = []
        inbox.take(into: &routed)
        #expect(routed.isEmpty)
        _ = bytes.withUnsafeBytes { send(peer, $0.baseAddress! + 30, bytes.count - 30, 0) }
        let deadline = Date().addingTimeInterval(5)
        while routed.isEmpty && Date() < deadline {
            usleep(20_000)
            inbox.take(into: &routed)
        }
        try #require(routed.count == 1)
        defer { close(routed[0].fd) }
        // What the router read and what is still unread make the whole handshake, in order.
        let read = routed[0].plaintextRead ?? []
        #expect(read.count >= 48 && read.count <= bytes.count)
        var rest = [UInt8](repeating: 0, count: bytes.count - read.count)
        if !rest.isEmpty {
            let count = rest.withUnsafeMutableBytes {
                recv(routed[0].fd, $0.baseAddress, $0.count, Int32(MSG_WAITALL))
            }
            #expect(count == rest.count)
        }
        #expect(read + rest == bytes, "read \(read.count) bytes")

        let stranger = try Self.connect(to: address)
        defer { close(stranger) }
        _ = Self.handshake(Self.unknown).withUnsafeBytes { send(stranger, $0.baseAddress, $0.count, 0) }
        #expect(Self.closedByPeer(stranger, seconds: 5))

        let encrypted = try Self.connect(to: address)
        defer { close(encrypted) }
        // Not a plain handshake, so taken for an encryption exchange; a key of all ones is not a valid
        // Diffie-Hellman key, and the exchange is refused at once.
        let noise = [UInt8](repeating: 0xff, count: 96)
        _ = noise.withUnsafeBytes { send(encrypted, $0.baseAddress, $0.count, 0) }
        #expect(Self.closedByPeer(encrypted, seconds: 5))

        // A stopped session's inbox refuses: the router closes the connection.
        inbox.close()
        let late = try Self.connect(to: address)
        defer { close(late) }
        _ = bytes.withUnsafeBytes { send(late, $0.baseAddress, $0.count, 0) }
        #expect(Self.closedByPeer(late, seconds: 5))
    }

    @Test func aSharedLimiterPacesTwoUsers() {
        let limiter = RateLimiter(rateBytesPerSecond: 1 << 20)
        var allowed = 0
        let start = ContinuousClock.now
        // Two users take turns for 300 ms: together they get about 0.3 MiB plus the 100 KiB burst.
        while ContinuousClock.now - start < .milliseconds(300) {
            for _ in 0..<2 where limiter.take(16_384) { allowed += 16_384 }
            usleep(1000)
        }
        #expect(allowed <= (1 << 20) * 3 / 10 + 110_000 + 2 * 16_384)
        #expect(allowed >= (1 << 20) / 10)
        #expect(RateLimiter(rateBytesPerSecond: 0).take(1 << 30))
    }

    /// A torrent's own limit inside the process-wide one: each transfer needs both to allow it and is
    /// charged to both, so the tighter one paces, and the shared one sees every torrent's bytes.
    @Test func aTorrentLimitLivesWithinTheSharedOne() {
        let shared = RateLimiter(rateBytesPerSecond: 4 << 20)
        let slow = RateLimiter(rateBytesPerSecond: 256 << 10, within: shared)
        let free = RateLimiter(rateBytesPerSecond: 0, within: shared)
        #expect(!free.isUnlimited && RateLimiter(rateBytesPerSecond: 0).isUnlimited)
        var slowBytes = 0
        var freeBytes = 0
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(300) {
            if slow.take(16_384) { slowBytes += 16_384 }
            if free.take(16_384) { freeBytes += 16_384 }
            usleep(1000)
        }
        // The slow torrent: 0.3 s at 256 KiB/s plus its burst; the other takes what the shared limit leaves.
        #expect(slowBytes <= (256 << 10) * 4 / 10 + 16_384, "\(slowBytes)")
        #expect(freeBytes > slowBytes, "\(freeBytes) vs \(slowBytes)")
        // The shared one's burst is a tenth of a second of its rate.
        #expect(slowBytes + freeBytes <= (4 << 20) * 4 / 10 + 2 * 16_384)
    }

    @Test func aConnectionBudgetIsSharedAndGivenBack() {
        let budget = ConnectionBudget(limit: 2)
        #expect(budget.acquire() && budget.acquire())
        #expect(!budget.acquire())
        budget.release()
        #expect(budget.count == 1 && budget.acquire())
    }
}
