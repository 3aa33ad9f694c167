import Foundation
import Metainfo
import Testing
import URing

@testable import Engine

/// Two Potluck engines on one host find each other by Local Service Discovery (BEP 14) alone: no peer,
/// no tracker, no DHT. Their announces go out on the interface the host routes 239.192.152.143 to, and
/// multicast loopback brings each to the other (its own is told apart by its cookie); the source address
/// is that interface's, so both listen on every address.
@Suite(.serialized) struct LocalDiscoveryEngineTests {
    static func engine() throws -> Engine {
        var options = EngineOptions()
        options.reactors = 1
        options.listenAddress = SocketAddress("0.0.0.0:0")
        options.localDiscovery = true
        return try Engine(options: options)
    }

    /// A public torrent is downloaded from the seeder heard on the LAN; a private one (BEP 27), shared
    /// by the same two engines, is neither announced nor heard, so it never gets a peer.
    @Test func aSeederOnTheLANIsFoundAndAPrivateTorrentIsNot() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("lsd-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("lsd-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let public_ = try EngineTests.makeTorrent(named: "l.bin", size: 300_000, seed: 41, in: seedDirectory)
        let private_ = try EngineTests.makeTorrent(
            named: "p.bin", size: 100_000, seed: 42, in: seedDirectory, isPrivate: true)

        let seeder = try Self.engine()
        defer { seeder.shutdown() }
        try #require(seeder.localDiscovery != nil, "no interface routes 239.192.152.143 (see the log)")
        var seeding = DownloadOptions(downloadDirectory: seedDirectory.path, peers: [])
        seeding.seedWhenComplete = true
        let seededPublic = try seeder.add(public_, options: seeding)
        let seededPrivate = try seeder.add(private_, options: seeding)
        #expect(
            EngineTests.eventually {
                seeder.snapshot(seededPublic)?.activity == .seeding
                    && seeder.snapshot(seededPrivate)?.activity == .seeding
            })

        let leecher = try Self.engine()
        defer { leecher.shutdown() }
        let options = DownloadOptions(downloadDirectory: leechDirectory.path, peers: [])
        let publicID = try leecher.add(public_, options: options)
        let privateID = try leecher.add(private_, options: options)
        #expect(
            EngineTests.eventually(30) { leecher.snapshot(publicID)?.activity == .finished },
            "\(String(describing: leecher.snapshot(publicID)?.activity))")
        #expect(
            FileManager.default.contentsEqual(
                atPath: seedDirectory.appendingPathComponent("l.bin").path,
                andPath: leechDirectory.appendingPathComponent("l.bin").path))

        // The announces that found the public torrent were made; a private one would have been in them.
        Thread.sleep(forTimeInterval: 2)
        #expect(leecher.snapshot(privateID)?.status?.knownPeers == 0)
        #expect(leecher.snapshot(privateID)?.status?.verifiedPieces == 0)
        #expect(seeder.snapshot(seededPrivate)?.status?.connectedPeers == 0)
    }
}
