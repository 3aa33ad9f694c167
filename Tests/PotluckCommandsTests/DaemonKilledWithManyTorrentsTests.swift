import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// The daemon holding 100 torrents, each from a libtorrent seeder found through opentracker and
/// limited to 2 MB/s in all, is killed with `kill -9` partway: restarted, every torrent is back, and
/// each completes byte-identical to the seeder's data.
@Suite(.serialized) struct DaemonKilledWithManyTorrentsTests {
    static let count = 100

    /// The `-l` rows of torrents at 100 %.
    static func completeRows(_ daemon: DaemonInteropTests.DaemonProcess) -> Int {
        ((try? daemon.remote(["-l"]).output) ?? "").split(separator: "\n").filter {
            $0.contains(" t0") && $0.contains("100%")
        }.count
    }

    static func listedRows(_ daemon: DaemonInteropTests.DaemonProcess) -> Int {
        ((try? daemon.remote(["-l"]).output) ?? "").split(separator: "\n").filter { $0.contains(" t0") }.count
    }

    @Test func everyTorrentComesBackAndCompletes() throws {
        let root = try DaemonInteropTests.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let made = root.appendingPathComponent("made")
        func makeTorrents(_ extra: [String]) throws -> [String: Any] {
            let result = try CreateInteropTests.run(
                "/usr/bin/python3",
                [
                    Interop.tool("many_torrents.py"), made.path, "--count", "\(Self.count)", "--min-bytes",
                    "100000", "--max-bytes", "400000", "--piece-bytes", "32768",
                ] + extra)
            try #require(result.status == 0, "many_torrents.py: \(result.output)")
            return try #require(
                JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        }
        // The infohashes do not depend on the announce URL: the tracker's whitelist comes first.
        let hashes = try #require(try makeTorrents([])["hashes"] as? [String])
        let tracker = try harnessProcess(
            [Interop.tool("tracker.py"), "start", "--http-port", "0", "--udp-port", "0", "--whitelist"]
                + hashes)
        defer { tracker.stop() }
        let announce = try #require(tracker.ready?["http"] as? String, "opentracker did not start")
        _ = try makeTorrents(["--tracker", announce])
        let torrents = (0..<Self.count).map {
            made.appendingPathComponent(String(format: "torrents/t%05d.torrent", $0))
        }
        let seeder = try harnessProcess(
            [Interop.tool("lt.py"), "seed"] + torrents.map(\.path) + [
                made.appendingPathComponent("data").path, "--tracker", announce, "--upload-rate", "2000000",
            ])
        defer { seeder.stop() }
        #expect((seeder.ready?["peers"] as? [String])?.count == 1)

        let state = root.appendingPathComponent("state")
        let downloads = root.appendingPathComponent("downloads")
        let watch = root.appendingPathComponent("watch")
        let log = root.appendingPathComponent("daemon.log")
        try FileManager.default.createDirectory(at: watch, withIntermediateDirectories: true)
        var daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: log,
            extra: ["--watch", watch.path, "--no-dht", "--no-lsd"])
        for torrent in torrents {
            try FileManager.default.copyItem(
                at: torrent, to: watch.appendingPathComponent(torrent.lastPathComponent))
        }
        // Partway: a quarter done.
        let partway = LocalDiscoveryInteropTests.eventually(90) {
            Self.completeRows(daemon) >= Self.count / 4
        }
        #expect(partway, "\(daemon.logText.suffix(3000))")
        let doneAtKill = Self.completeRows(daemon)
        daemon.killHard()
        #expect(doneAtKill < Self.count, "the kill came after the last torrent finished")

        daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: log,
            extra: ["--no-dht", "--no-lsd"])
        let listing = try daemon.remote(["-l"]).output
        #expect(Self.listedRows(daemon) == Self.count, "\(listing)")
        let all = LocalDiscoveryInteropTests.eventually(180) { Self.completeRows(daemon) == Self.count }
        #expect(all, "\(Self.completeRows(daemon)) of \(Self.count) complete\n\(daemon.logText.suffix(3000))")
        for index in 0..<Self.count {
            let name = String(format: "t%05d.bin", index)
            #expect(
                FileManager.default.contentsEqual(
                    atPath: made.appendingPathComponent("data/\(name)").path,
                    andPath: downloads.appendingPathComponent(name).path), "\(name)")
        }
    }
}
