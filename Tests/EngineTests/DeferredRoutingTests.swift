import Foundation
import Glibc
import Testing
import TorrentModel
import URing

@testable import Engine

/// `EngineOptions.routesPeersAtStart = false`: a daemon restoring its torrents lets peers wait in the
/// listen backlog rather than turning them away for a torrent it has not added yet.
@Suite struct DeferredRoutingTests {
    @Test func aPeerThatCameBeforeItsTorrentIsAnsweredOnceRoutingStarts() throws {
        let directory = try EngineTests.temporaryDirectory("deferred")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "d.bin", size: 50_000, seed: 4, in: directory)
        var engineOptions = EngineOptions()
        engineOptions.reactors = 1
        engineOptions.listenAddress = SocketAddress("127.0.0.1:0")
        engineOptions.routesPeersAtStart = false
        let engine = try Engine(options: engineOptions)
        defer { engine.shutdown() }

        // The peer connects and sends its handshake before the torrent is added: it is not turned away.
        let peer = try IncomingRouterTests.connect(to: try #require(engine.boundAddress))
        defer { close(peer) }
        let handshake = IncomingRouterTests.handshake(metainfo.wireInfoHash)
        #expect(handshake.withUnsafeBytes { send(peer, $0.baseAddress, $0.count, 0) } == handshake.count)
        #expect(!IncomingRouterTests.closedByPeer(peer, seconds: 0.5), "the peer was turned away")
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        let id = try engine.add(metainfo, options: options)
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })

        engine.startRoutingPeers()
        // The torrent answers with its own handshake, naming the torrent.
        var answer = [UInt8](repeating: 0, count: 68)
        var received = 0
        let deadline = Date().addingTimeInterval(10)
        while received < answer.count && Date() < deadline {
            var descriptor = pollfd(fd: peer, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            let count = answer.withUnsafeMutableBytes {
                recv(peer, $0.baseAddress! + received, 68 - received, 0)
            }
            guard count > 0 else { break }
            received += count
        }
        #expect(received == 68, "the peer was not answered")
        #expect(Array(answer[28..<48]) == metainfo.wireInfoHash.bytes)
    }

    @Test func aListenerNeverRoutedIsClosedAtShutdown() throws {
        var engineOptions = EngineOptions()
        engineOptions.reactors = 1
        engineOptions.listenAddress = SocketAddress("127.0.0.1:0")
        engineOptions.routesPeersAtStart = false
        let engine = try Engine(options: engineOptions)
        let address = try #require(engine.boundAddress)
        engine.shutdown()
        #expect(throws: (any Error).self) { close(try IncomingRouterTests.connect(to: address)) }
    }
}
