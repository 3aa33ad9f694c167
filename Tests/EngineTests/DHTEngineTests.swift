import DHT
import Foundation
import Metainfo
import Testing
import TorrentModel
import URing

@testable import Engine

/// Potluck engines make a DHT of their own on loopback: a seeder announces a torrent, and a leecher
/// given only its magnet link (no peer, no tracker) and one node finds the seeder, fetches the metadata
/// and downloads.
@Suite struct DHTEngineTests {
    /// An engine whose DHT node (and listener) is at 127.0.`subnet`.1: a routing table keeps one node
    /// per address (and per /24 in a bucket), so each node of the lab has a /24 of its own, as on the
    /// internet; Linux answers on all of 127/8.
    static func engine(
        subnet: Int, listen: Bool, bootstrap: [SocketAddress], statePath: String? = nil
    ) throws -> Engine {
        var options = EngineOptions()
        options.reactors = 1
        if listen { options.listenAddress = SocketAddress("127.0.\(subnet).1:0") }
        options.dht = DHTOptions(
            bindAddress: SocketAddress("127.0.\(subnet).1:0")!, bootstrap: bootstrap.map { "\($0)" },
            statePath: statePath)
        return try Engine(options: options)
    }

    @Test func aMagnetLinkIsFoundThroughTheDHTAndDownloaded() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("dht-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("dht-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let first = try Self.engine(subnet: 11, listen: false, bootstrap: [])
        defer { first.shutdown() }
        let entry = try #require(first.dht?.boundAddress)
        let others = try (12..<16).map { try Self.engine(subnet: $0, listen: false, bootstrap: [entry]) }
        defer { others.forEach { $0.shutdown() } }

        let metainfo = try EngineTests.makeTorrent(named: "d.bin", size: 300_000, seed: 3, in: seedDirectory)
        let seeder = try Self.engine(subnet: 16, listen: true, bootstrap: [entry])
        defer { seeder.shutdown() }
        var seeding = DownloadOptions(downloadDirectory: seedDirectory.path, peers: [])
        seeding.seedWhenComplete = true
        let seeded = try seeder.add(metainfo, options: seeding)
        #expect(EngineTests.eventually { seeder.snapshot(seeded)?.activity == .seeding })

        // The leecher knows one node, not the one the others joined through.
        let leecher = try Self.engine(
            subnet: 17, listen: false, bootstrap: [try #require(others[2].dht?.boundAddress)])
        defer { leecher.shutdown() }
        let magnet = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(metainfo.wireInfoHash.hex)&dn=d.bin")
        let id = try leecher.add(
            magnet: magnet, options: DownloadOptions(downloadDirectory: leechDirectory.path, peers: []))
        #expect(
            EngineTests.eventually(60) { leecher.snapshot(id)?.activity == .finished },
            "\(String(describing: leecher.snapshot(id)?.activity)); leecher's table: \(leecher.dhtNodeCount() ?? -1)"
        )
        #expect(
            FileManager.default.contentsEqual(
                atPath: seedDirectory.appendingPathComponent("d.bin").path,
                andPath: leechDirectory.appendingPathComponent("d.bin").path))
        #expect((first.dhtNodeCount() ?? 0) >= 4)
    }

    @Test func theRoutingTableIsKeptForTheNextRun() throws {
        let directory = try EngineTests.temporaryDirectory("dht-state")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try Self.engine(subnet: 21, listen: false, bootstrap: [])
        defer { first.shutdown() }
        let entry = try #require(first.dht?.boundAddress)
        let statePath = directory.appendingPathComponent("dht.dat").path
        let node = try Self.engine(subnet: 22, listen: false, bootstrap: [entry], statePath: statePath)
        #expect(EngineTests.eventually { (node.dhtNodeCount() ?? 0) >= 1 })
        node.shutdown()
        let saved = try DHTSavedState(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: statePath))))
        #expect(saved.nodes.map(\.endpoint.port) == [entry.port])
        // Back without any router: it joins through the node it kept.
        let again = try Self.engine(subnet: 22, listen: false, bootstrap: [], statePath: statePath)
        defer { again.shutdown() }
        #expect(EngineTests.eventually { (again.dhtNodeCount() ?? 0) >= 1 })
    }
}
