import Foundation
import Testing
import TorrentModel
import URing

@testable import Engine

/// Limits changed while torrents run: the engine's own and a torrent's reach the transfers at once,
/// and a torrent keeps its own across a pause.
@Suite struct EngineLimitsTests {
    /// A seeder of one torrent of `size` bytes in `directory`, and the leecher engine's download of it.
    struct Swarm {
        let seeder: Engine
        let seedID: TorrentID
        let leecher: Engine
        let leechID: TorrentID
    }

    /// Starts the seeder, waits until it seeds, then starts the leecher and waits until it is
    /// connected to the seeder.
    static func swarm(
        size: Int, seederOptions: EngineOptions, seedOptions: (inout DownloadOptions) -> Void,
        in directory: URL
    ) throws -> Swarm {
        let seedDirectory = directory.appendingPathComponent("seed")
        let leechDirectory = directory.appendingPathComponent("leech")
        try FileManager.default.createDirectory(at: seedDirectory, withIntermediateDirectories: true)
        let metainfo = try EngineTests.makeTorrent(
            named: "limited.bin", size: size, seed: 7, in: seedDirectory)
        var seederOptions = seederOptions
        seederOptions.reactors = 1
        seederOptions.listenAddress = SocketAddress("127.0.0.1:0")
        let seeder = try Engine(options: seederOptions)
        var options = DownloadOptions(downloadDirectory: seedDirectory.path, peers: [])
        options.seedWhenComplete = true
        seedOptions(&options)
        let seedID = try seeder.add(metainfo, options: options)
        #expect(EngineTests.eventually { seeder.snapshot(seedID)?.activity == .seeding })

        var leecherOptions = EngineOptions()
        leecherOptions.reactors = 1
        let leecher = try Engine(options: leecherOptions)
        let port = try #require(seeder.boundAddress).port
        let leechID = try leecher.add(
            metainfo,
            options: DownloadOptions(
                downloadDirectory: leechDirectory.path, peers: [SocketAddress("127.0.0.1:\(port)")!]))
        #expect(EngineTests.eventually { (leecher.snapshot(leechID)?.status?.connectedPeers ?? 0) > 0 })
        return Swarm(seeder: seeder, seedID: seedID, leecher: leecher, leechID: leechID)
    }

    /// While the seeder sends 1 byte/s (its burst lets a block or two through), the download cannot
    /// finish; this only checks that it has not.
    static func expectStillDownloading(_ swarm: Swarm) {
        usleep(1_000_000)
        let snapshot = swarm.leecher.snapshot(swarm.leechID)
        #expect(snapshot?.activity == .downloading, "\(String(describing: snapshot?.activity))")
        #expect((snapshot?.status?.verifiedPieces ?? 0) < (snapshot?.status?.pieceCount ?? 0))
    }

    @Test func aRaisedEngineUploadLimitLetsTheLeecherFinish() throws {
        let directory = try EngineTests.temporaryDirectory("global-limit")
        defer { try? FileManager.default.removeItem(at: directory) }
        var seederOptions = EngineOptions()
        seederOptions.maximumUploadRateBytesPerSecond = 1
        let swarm = try Self.swarm(
            size: 400_000, seederOptions: seederOptions, seedOptions: { _ in }, in: directory)
        defer {
            swarm.leecher.shutdown()
            swarm.seeder.shutdown()
        }
        Self.expectStillDownloading(swarm)

        swarm.seeder.setGlobalRates(uploadBytesPerSecond: 50_000_000, downloadBytesPerSecond: 0)
        #expect(swarm.seeder.globalUploadRateBytesPerSecond == 50_000_000)
        #expect(swarm.seeder.globalDownloadRateBytesPerSecond == 0)
        #expect(
            EngineTests.eventually { swarm.leecher.snapshot(swarm.leechID)?.activity == .finished },
            "\(String(describing: swarm.leecher.snapshot(swarm.leechID)?.activity))")
    }

    @Test func aTorrentsOwnLimitLiftedAtRuntimeLetsTheLeecherFinish() throws {
        let directory = try EngineTests.temporaryDirectory("torrent-limit")
        defer { try? FileManager.default.removeItem(at: directory) }
        let swarm = try Self.swarm(
            size: 400_000, seederOptions: EngineOptions(),
            seedOptions: { $0.maximumUploadRateBytesPerSecond = 1 }, in: directory)
        defer {
            swarm.leecher.shutdown()
            swarm.seeder.shutdown()
        }
        Self.expectStillDownloading(swarm)

        try swarm.seeder.setRates(swarm.seedID, uploadBytesPerSecond: 0, downloadBytesPerSecond: 0)
        #expect(swarm.seeder.snapshot(swarm.seedID)?.limits.uploadRateBytesPerSecond == 0)
        #expect(
            EngineTests.eventually { swarm.leecher.snapshot(swarm.leechID)?.activity == .finished },
            "\(String(describing: swarm.leecher.snapshot(swarm.leechID)?.activity))")
    }

    /// Limits set while the torrent runs are in its snapshot, survive a pause and resume, and a seed
    /// ratio already reached stops a running seed (and the resumed one again).
    @Test func aTorrentKeepsLimitsSetAtRuntimeAcrossAPause() throws {
        let directory = try EngineTests.temporaryDirectory("kept-limits")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "kept.bin", size: 100_000, seed: 3, in: directory)
        let engine = try Engine(options: EngineOptions())
        defer { engine.shutdown() }
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        let id = try engine.add(metainfo, options: options)
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })

        try engine.setRates(id, uploadBytesPerSecond: 5_000, downloadBytesPerSecond: 7_000)
        try engine.setMaximumPeers(id, 3)
        try engine.setSeedLimits(id, ratio: nil, timeSeconds: 3_600)
        let expected = TorrentLimits(
            uploadRateBytesPerSecond: 5_000, downloadRateBytesPerSecond: 7_000, maximumPeers: 3,
            seedRatioLimit: nil, seedTimeLimitSeconds: 3_600)
        #expect(engine.snapshot(id)?.limits == expected)
        try engine.pause(id)
        #expect(EngineTests.eventually { engine.snapshot(id)?.isLive == false })
        try engine.resume(id)
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })
        #expect(engine.snapshot(id)?.limits == expected)

        // Nothing uploaded reaches a ratio of 0: the running seed stops at once, and so does a resumed one.
        try engine.setSeedLimits(id, ratio: 0, timeSeconds: nil)
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .finished })
        try engine.resume(id)
        #expect(
            EngineTests.eventually {
                engine.snapshot(id)?.activity == .finished && engine.snapshot(id)?.isLive == false
            })
        #expect(engine.snapshot(id)?.limits.seedRatioLimit == 0)

        #expect(throws: EngineError.self) { try engine.setMaximumPeers(TorrentID(value: 99), 1) }
    }

    @Test func theEngineLimitsChangeAtRuntime() throws {
        var options = EngineOptions()
        options.maximumConnections = 10
        options.maximumUploadRateBytesPerSecond = 1_000
        let engine = try Engine(options: options)
        defer { engine.shutdown() }
        engine.setMaximumConnections(2)
        engine.setGlobalRates(uploadBytesPerSecond: 0, downloadBytesPerSecond: 3_000)
        #expect(engine.maximumConnections == 2)
        #expect(
            engine.globalUploadRateBytesPerSecond == 0 && engine.globalDownloadRateBytesPerSecond == 3_000)
    }
}
