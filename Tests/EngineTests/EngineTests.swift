import Foundation
import Glibc
import Hashing
import Metainfo
import PeerWire
import Testing
import TorrentModel
import URing

@testable import Engine

/// The engine API over real reactors and sockets: one engine seeds several torrents on two reactors
/// behind one port, another downloads them; pause, resume, remove and duplicates behave as documented.
@Suite struct EngineTests {
    /// A torrent of `size` pseudo-random bytes written into `directory`.
    static func makeTorrent(
        named name: String, size: Int, seed: UInt8, in directory: URL, isPrivate: Bool = false
    ) throws -> Metainfo {
        let pieceLength = 16 * 1024
        var generator = SeededRandom(seed: UInt64(seed) + 1)
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(payload).write(to: directory.appendingPathComponent(name))
        var builder = TorrentBuilder(
            name: name, files: [TorrentBuilder.File(path: [name], length: Int64(size))],
            pieceLength: pieceLength, format: .v1)
        builder.isPrivate = isPrivate
        builder.pieceHashesV1 = stride(from: 0, to: size, by: pieceLength).map {
            SHA1.hash(payload[$0..<min($0 + pieceLength, size)])
        }
        return try Metainfo(bytes: builder.build())
    }

    static func temporaryDirectory(_ label: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("potluck-engine-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Waits (at most `seconds`) until `condition` holds.
    static func eventually(_ seconds: Double = 30, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    @Test func twoReactorsSeedSeveralTorrentsThatAnotherEngineDownloads() throws {
        let seedDirectory = try Self.temporaryDirectory("seed")
        let leechDirectory = try Self.temporaryDirectory("leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let torrents = try (0..<6).map {
            try Self.makeTorrent(
                named: "t\($0).bin", size: 40_000 + 9_000 * $0, seed: UInt8($0), in: seedDirectory)
        }
        var seederOptions = EngineOptions()
        seederOptions.reactors = 2
        seederOptions.listenAddress = SocketAddress("127.0.0.1:0")
        let seeder = try Engine(options: seederOptions)
        defer { seeder.shutdown() }
        #expect(seeder.reactorCount == 2)
        var ids: [TorrentID] = []
        for metainfo in torrents {
            var options = DownloadOptions(downloadDirectory: seedDirectory.path, peers: [])
            options.seedWhenComplete = true
            ids.append(try seeder.add(metainfo, options: options))
        }
        #expect(
            Self.eventually { seeder.snapshots().allSatisfy { $0.activity == .seeding } },
            "\(seeder.snapshots().map(\.activity))")
        // The same torrent twice is refused, naming the first.
        #expect(throws: EngineError.self) {
            try seeder.add(
                torrents[0], options: DownloadOptions(downloadDirectory: seedDirectory.path, peers: []))
        }

        var leecherOptions = EngineOptions()
        leecherOptions.reactors = 1
        let leecher = try Engine(options: leecherOptions)
        defer { leecher.shutdown() }
        let port = try #require(seeder.boundAddress).port
        for metainfo in torrents {
            try leecher.add(
                metainfo,
                options: DownloadOptions(
                    downloadDirectory: leechDirectory.path, peers: [SocketAddress("127.0.0.1:\(port)")!]))
        }
        #expect(Self.eventually { !leecher.hasLiveTorrents }, "\(leecher.snapshots().map(\.activity))")
        for snapshot in leecher.snapshots() {
            #expect(snapshot.activity == .finished, "\(snapshot.name): \(snapshot.activity)")
            #expect(
                FileManager.default.contentsEqual(
                    atPath: seedDirectory.appendingPathComponent(snapshot.name).path,
                    andPath: leechDirectory.appendingPathComponent(snapshot.name).path))
        }
        let served = seeder.summary()
        #expect(served.torrents == 6 && served.live == 6)

        // Paused: it ends cleanly and stays; resumed: it seeds again from its resume data; removed: gone.
        try seeder.pause(ids[2])
        #expect(Self.eventually { seeder.snapshot(ids[2])?.isLive == false })
        #expect(seeder.snapshot(ids[2])?.activity == .paused)
        #expect(seeder.snapshot(ids[2])?.ended.map { (try? $0.get()) == .interrupted } == true)
        try seeder.resume(ids[2])
        #expect(Self.eventually { seeder.snapshot(ids[2])?.activity == .seeding })
        try seeder.remove(ids[3])
        #expect(Self.eventually { seeder.snapshot(ids[3]) == nil })
        #expect(seeder.summary().torrents == 5)
        #expect(throws: EngineError.self) { try seeder.pause(ids[3]) }
        // Once removed, the torrent can be added again.
        var again = DownloadOptions(downloadDirectory: seedDirectory.path, peers: [])
        again.seedWhenComplete = true
        let readded = try seeder.add(torrents[3], options: again)
        #expect(Self.eventually { seeder.snapshot(readded)?.activity == .seeding })
    }

    @Test func shutdownStopsEveryTorrentAndRefusesNewOnes() throws {
        let directory = try Self.temporaryDirectory("shutdown")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try Self.makeTorrent(named: "s.bin", size: 100_000, seed: 9, in: directory)
        let engine = try Engine(options: EngineOptions())
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        let id = try engine.add(metainfo, options: options)
        #expect(Self.eventually { engine.snapshot(id)?.activity == .seeding })
        engine.shutdown()
        #expect(engine.snapshot(id)?.isLive == false)
        let resumeFiles = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".potluck-resume") }
        #expect(resumeFiles.count == 1, "a clean stop saves resume data")
        #expect(throws: EngineError.self) { try engine.add(metainfo, options: options) }
    }

    /// An encryption exchange whose public key happens to start with 19 (the plain handshake's first
    /// byte; one key in 256) is still taken for one: the seeder answers with its own key instead of
    /// parsing the key as a malformed plain handshake.
    @Test func anEncryptionKeyStartingLikeAPlainHandshakeIsAnswered() throws {
        let directory = try Self.temporaryDirectory("mse")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try Self.makeTorrent(named: "m.bin", size: 50_000, seed: 3, in: directory)
        let engine = try Engine(options: EngineOptions())
        defer { engine.shutdown() }
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        options.listenAddress = SocketAddress("127.0.0.1:0")
        let id = try engine.add(metainfo, options: options)
        #expect(Self.eventually { engine.snapshot(id)?.status?.listenAddress != nil })
        let address = try #require(engine.snapshot(id)?.status?.listenAddress)

        var key: [UInt8] = []
        while key.first != 19 {
            let privateKey = (0..<20).map { _ in UInt8.random(in: 0...255) }
            key = StreamEncryptionKeyExchange.publicKey(privateKey: privateKey)
        }
        let fd = try Socket.makeTCP(family: address.family)
        defer { close(fd) }
        try Socket.connectBlocking(fd, to: address)
        // In two parts, the first shorter than the protocol name: the seeder waits to decide.
        _ = key.withUnsafeBytes { send(fd, $0.baseAddress, 10, 0) }
        usleep(50_000)
        _ = key.withUnsafeBytes { send(fd, $0.baseAddress! + 10, key.count - 10, 0) }
        var answer = [UInt8](repeating: 0, count: key.count)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let count = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_WAITALL)) }
        #expect(count == key.count, "the seeder answers with its own key (got \(count) bytes)")
    }
}
