import Foundation
import Metainfo
import Testing
import URing

@testable import Engine

/// A seed nobody asks for leaves its reactor and a stand-in holds its place: a peer that connects
/// wakes it, its totals survive the rest, commands reach it, and a seed that announces to trackers
/// stays awake.
@Suite struct RestingTests {
    static func engine(restAfterSeconds: Int?) throws -> Engine {
        var options = EngineOptions()
        options.reactors = 1
        options.listenAddress = SocketAddress("127.0.0.1:0")
        options.restIdleSeedsAfterSeconds = restAfterSeconds
        return try Engine(options: options)
    }

    static func download(_ metainfo: Metainfo, from seeder: Engine, into directory: URL) throws {
        let leecher = try engine(restAfterSeconds: nil)
        defer { leecher.shutdown() }
        let port = try #require(seeder.boundAddress).port
        let id = try leecher.add(
            metainfo,
            options: DownloadOptions(
                downloadDirectory: directory.path, peers: [SocketAddress("127.0.0.1:\(port)")!]))
        #expect(EngineTests.eventually { leecher.snapshot(id)?.isLive == false })
        #expect(leecher.snapshot(id)?.activity == .finished)
    }

    @Test func anIdleSeedRestsAPeerWakesItAndItsTotalsSurvive() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("rest-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("rest-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let torrents = try (0..<3).map {
            try EngineTests.makeTorrent(
                named: "r\($0).bin", size: 60_000 + 5_000 * $0, seed: UInt8(70 + $0), in: seedDirectory)
        }
        let seeder = try Self.engine(restAfterSeconds: 1)
        defer { seeder.shutdown() }
        let ids = try torrents.map {
            try seeder.add($0, options: ManyTorrentsTests.seedingOptions(seedDirectory))
        }
        #expect(
            EngineTests.eventually { seeder.summary().resting == 3 }, "\(seeder.snapshots().map(\.activity))")
        for snapshot in seeder.snapshots() {
            #expect(snapshot.isResting && snapshot.isLive && snapshot.activity == .seeding)
            #expect(snapshot.status?.connectedPeers == 0)
        }
        #expect(seeder.summary().live == 3)

        // A peer arrives: the torrent wakes, serves it, and rests again once it has gone.
        try Self.download(torrents[0], from: seeder, into: leechDirectory)
        let name = torrents[0].name
        #expect(
            FileManager.default.contentsEqual(
                atPath: seedDirectory.appendingPathComponent(name).path,
                andPath: leechDirectory.appendingPathComponent(name).path))
        #expect(EngineTests.eventually { seeder.snapshot(ids[0])?.isResting == true })
        let size = Int64(torrents[0].totalLength)
        #expect(seeder.snapshot(ids[0])?.status?.uploadedPayloadBytes == size)

        // Again: what the first visit uploaded is still counted.
        try FileManager.default.removeItem(at: leechDirectory.appendingPathComponent(name))
        try FileManager.default.removeItem(
            at: leechDirectory.appendingPathComponent(".\(torrents[0].wireInfoHash.hex).potluck-resume"))
        try Self.download(torrents[0], from: seeder, into: leechDirectory)
        #expect(EngineTests.eventually { seeder.snapshot(ids[0])?.status?.uploadedPayloadBytes == 2 * size })
        #expect(EngineTests.eventually { seeder.snapshot(ids[0])?.isResting == true })

        // A command that needs a session wakes it (and it rests again); pause and remove end it.
        try seeder.setRates(ids[1], uploadBytesPerSecond: 1 << 20, downloadBytesPerSecond: 0)
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isResting == false })
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isResting == true })
        try seeder.pause(ids[1])
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isLive == false })
        #expect(seeder.snapshot(ids[1])?.activity == .paused)
        #expect(seeder.snapshot(ids[1])?.isResting == false)
        #expect(seeder.snapshot(ids[1])?.ended.map { (try? $0.get()) == .interrupted } == true)
        try seeder.resume(ids[1])
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isResting == true })
        try seeder.remove(ids[2])
        #expect(EngineTests.eventually { seeder.snapshot(ids[2]) == nil })
        #expect(seeder.summary().resting == 2 && seeder.summary().live == 2)
    }

    @Test func aSeedWithTrackersOrWithoutTheOptionStaysAwake() throws {
        let directory = try EngineTests.temporaryDirectory("awake")
        defer { try? FileManager.default.removeItem(at: directory) }
        let announcing = try EngineTests.makeTorrent(named: "a.bin", size: 40_000, seed: 81, in: directory)
        let plain = try EngineTests.makeTorrent(named: "p.bin", size: 40_000, seed: 82, in: directory)
        let seeder = try Self.engine(restAfterSeconds: 1)
        defer { seeder.shutdown() }
        var options = ManyTorrentsTests.seedingOptions(directory)
        options.trackers = [["http://127.0.0.1:9/announce"]]
        let id = try seeder.add(announcing, options: options)
        let never = try Self.engine(restAfterSeconds: nil)
        defer { never.shutdown() }
        let other = try never.add(plain, options: ManyTorrentsTests.seedingOptions(directory))
        #expect(EngineTests.eventually { seeder.snapshot(id)?.activity == .seeding })
        #expect(EngineTests.eventually { never.snapshot(other)?.activity == .seeding })
        sleep(3)
        #expect(seeder.snapshot(id)?.isResting == false, "its trackers need a running session")
        #expect(never.snapshot(other)?.isResting == false)
    }
}
