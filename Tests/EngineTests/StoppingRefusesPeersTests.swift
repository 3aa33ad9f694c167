import Foundation
import Glibc
import PeerWire
import Testing
import TorrentModel
import URing

@testable import Engine

/// A torrent that is stopping has closed its links but keeps its listener until it is gone (its
/// trackers may take up to 10 s to hear `stopped`). A peer that connected then once took the slot of a
/// closed link that the request pipeline still counted, and the handshake trapped ("peer#0 is already
/// connected"; seen when a full disk stopped a download while its seeders called back).
@Suite struct StoppingRefusesPeersTests {
    @Test func aPeerArrivingWhileTheTorrentStopsIsRefused() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("stopping-seed")
        let directory = try EngineTests.temporaryDirectory("stopping")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: directory)
        }
        let metainfo = try EngineTests.makeTorrent(named: "s.bin", size: 200_000, seed: 17, in: seedDirectory)
        let tracker = try TinyHTTPTracker(intervalSeconds: 1800, answersStopped: false)
        defer { tracker.stop() }
        let engine = try Engine(options: EngineOptions())
        defer { engine.shutdown() }
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.listenAddress = SocketAddress("127.0.0.1:0")
        options.trackers = [["http://127.0.0.1:\(tracker.port)/announce"]]
        let id = try engine.add(metainfo, options: options)
        #expect(EngineTests.eventually { engine.trackerStatus(of: id).first?.lastAnnounceSucceeded == true })
        let address = try #require(engine.snapshot(id)?.status?.listenAddress)

        let first = try Self.handshake(with: address, infoHash: metainfo.wireInfoHash)
        defer { close(first.fd) }
        #expect(first.answered, "a downloading torrent answers the handshake")
        try engine.pause(id)
        #expect(Self.closedByTheOtherSide(first.fd), "stopping closes the links")
        #expect(engine.snapshot(id)?.isLive == true, "still waiting for the tracker to hear `stopped`")

        let late = try Self.handshake(with: address, infoHash: metainfo.wireInfoHash)
        defer { close(late.fd) }
        #expect(!late.answered, "a stopping torrent refuses new peers")
        #expect(engine.snapshot(id)?.isLive == true)
        tracker.stop()
        #expect(EngineTests.eventually { engine.snapshot(id)?.isLive == false })
        #expect(engine.snapshot(id)?.activity == .paused)
    }

    /// Connects, sends a plain handshake and reads one back (false when the socket closes first).
    static func handshake(
        with address: SocketAddress, infoHash: InfoHash
    ) throws -> (fd: Int32, answered: Bool) {
        let fd = try Socket.makeTCP(family: address.family)
        try Socket.connectBlocking(fd, to: address)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        Handshake(
            reserved: [.fastExtension], infoHash: infoHash, peerID: PeerID(Array(repeating: 7, count: 20))!
        )
        .encode(into: &bytes)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer = [UInt8](repeating: 0, count: Handshake.byteCount)
        let count = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_WAITALL)) }
        return (fd, count == Handshake.byteCount)
    }

    /// Reads until the other side closes (true) or 5 s pass without it (false).
    static func closedByTheOtherSide(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
            if count < 0 { return false }
        }
    }
}

/// A torrent that stops while its tracker has not answered shuts the tracker's connection down, and
/// leaves once the receive on the ring has completed (it used to leave at once, the receive's buffer
/// never freed and its late completion left to whoever took the tenant number next): the wait must
/// not hold the torrent up.
@Suite struct StoppingClosesTrackerConnectionsTests {
    @Test func aTrackerThatNeverAnswersSeesTheConnectionClose() throws {
        let directory = try EngineTests.temporaryDirectory("stopping-tracker")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "t.bin", size: 50_000, seed: 3, in: directory)
        let listener = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        defer { close(listener) }
        let port = try Socket.localAddress(of: listener).port
        let engine = try Engine(options: EngineOptions())
        defer { engine.shutdown() }
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        options.trackers = [["http://127.0.0.1:\(port)/announce"]]
        let id = try engine.add(metainfo, options: options)
        var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        try #require(poll(&waiting, 1, 10_000) == 1, "no announce")
        let connection = accept(listener, nil, nil)
        try #require(connection >= 0)
        defer { close(connection) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        #expect(recv(connection, &buffer, buffer.count, 0) > 0, "no request")

        try engine.pause(id)
        #expect(StoppingRefusesPeersTests.closedByTheOtherSide(connection), "still open 5 s after the stop")
        #expect(EngineTests.eventually { engine.snapshot(id)?.isLive == false })
    }
}
