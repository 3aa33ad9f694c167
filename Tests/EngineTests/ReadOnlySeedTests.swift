import Foundation
import Glibc
import Metainfo
import Testing
import TorrentModel
import URing

@testable import Engine

/// A torrent seeded from a read-only mount (a media library mounted `ro`, say): its files are opened
/// for reading only, and a leecher gets every byte. They were opened `O_RDWR` (and an empty file
/// created), which a read-only file system refuses, and the seed stopped.
@Suite(.serialized) struct ReadOnlySeedTests {
    static func mount(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/mount")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "mount \(arguments)")
    }

    @Test func aSeedOnAReadOnlyMountServesALeecher() throws {
        let library = try EngineTests.temporaryDirectory("read-only-library")
        let leech = try EngineTests.temporaryDirectory("read-only-leech")
        defer {
            _ = try? Self.mount(["-o", "remount,rw", library.path])
            umount2(library.path, Int32(MNT_DETACH))
            try? FileManager.default.removeItem(at: library)
            try? FileManager.default.removeItem(at: leech)
        }
        // Root ignores permission bits: only a read-only mount refuses it a write.
        try Self.mount(["-t", "tmpfs", "-o", "size=16m", "tmpfs", library.path])
        let metainfo = try EngineTests.makeTorrent(named: "film.bin", size: 700_000, seed: 21, in: library)
        try Self.mount(["-o", "remount,ro", library.path])

        var seederOptions = EngineOptions()
        seederOptions.reactors = 1
        seederOptions.listenAddress = SocketAddress("127.0.0.1:0")
        let seeder = try Engine(options: seederOptions)
        defer { seeder.shutdown() }
        var options = DownloadOptions(downloadDirectory: library.path, peers: [])
        options.seedWhenComplete = true
        let seed = try seeder.add(metainfo, options: options)
        #expect(
            EngineTests.eventually { seeder.snapshot(seed)?.activity == .seeding },
            "\(String(describing: seeder.snapshot(seed)?.activity))")

        var leecherOptions = EngineOptions()
        leecherOptions.reactors = 1
        let leecher = try Engine(options: leecherOptions)
        defer { leecher.shutdown() }
        let port = try #require(seeder.boundAddress).port
        try leecher.add(
            metainfo,
            options: DownloadOptions(
                downloadDirectory: leech.path, peers: [SocketAddress("127.0.0.1:\(port)")!]))
        #expect(
            EngineTests.eventually(20) { !leecher.hasLiveTorrents }, "\(leecher.snapshots().map(\.activity))")
        #expect(
            FileManager.default.contentsEqual(
                atPath: library.appendingPathComponent("film.bin").path,
                andPath: leech.appendingPathComponent("film.bin").path))
        #expect(
            seeder.snapshot(seed)?.activity == .seeding,
            "\(String(describing: seeder.snapshot(seed)?.activity))")
    }
}
