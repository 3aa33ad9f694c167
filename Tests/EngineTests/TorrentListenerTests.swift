import Foundation
import Glibc
import Testing
import TorrentModel
import URing

@testable import Engine

/// A torrent listening on a port of its own (`potluck download --listen`) gives the port back when
/// it stops: its accept on the ring held the socket open, still listening, after `close`, so a
/// resumed torrent could not bind the port again.
@Suite struct TorrentListenerTests {
    @Test func aStoppedTorrentGivesItsPortBack() throws {
        let directory = try EngineTests.temporaryDirectory("own-listener")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "l.bin", size: 50_000, seed: 4, in: directory)
        let probe = try Socket.listenTCP(on: SocketAddress("127.0.0.1:0")!)
        let port = try Socket.localAddress(of: probe).port
        close(probe)
        var engineOptions = EngineOptions()
        engineOptions.reactors = 1
        let engine = try Engine(options: engineOptions)
        defer { engine.shutdown() }
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        options.listenAddress = SocketAddress("127.0.0.1:\(port)")
        let id = try engine.add(metainfo, options: options)
        for visit in 0..<2 {
            #expect(
                EngineTests.eventually { engine.snapshot(id)?.activity == .seeding },
                "visit \(visit): \(String(describing: engine.snapshot(id)?.activity))")
            try engine.pause(id)
            #expect(EngineTests.eventually { engine.snapshot(id)?.isLive == false }, "visit \(visit)")
            let again = try? Socket.listenTCP(on: SocketAddress("127.0.0.1:\(port)")!)
            #expect(again != nil, "visit \(visit): port \(port) is still taken")
            if let again { close(again) }
            try engine.resume(id)
        }
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })
    }
}
