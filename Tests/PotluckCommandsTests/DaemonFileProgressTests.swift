import Foundation
import Testing

@testable import PotluckBench

/// A torrent added paused with one file skipped (transmission-remote `-G`), then started: it is done
/// once the wanted files are, and `-f` shows each file's own progress from the pieces verified, the
/// skipped one holding only the bytes of the piece it shares with its neighbour.
@Suite(.serialized) struct DaemonFileProgressTests {
    @Test func skippedFilesAndPerFileProgress() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [1_000_000, 2_000_000, 700_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let torrent = try TrackerInteropTests.create(setup.data, trackers: [setup.http], name: "t.torrent")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, setup.data.deletingLastPathComponent().path, "--count",
            "2",
        ])
        defer { seeders.stop() }
        #expect((seeders.ready?["peers"] as? [String])?.count == 2)

        let downloads = setup.root.appendingPathComponent("downloads")
        let daemon = try DaemonInteropTests.DaemonProcess(
            state: setup.root.appendingPathComponent("state"), downloads: downloads,
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: setup.root.appendingPathComponent("daemon.log"))
        #expect(try daemon.remote(["--start-paused", "-a", torrent]).status == 0)
        // transmission-remote numbers files in the torrent's order: file0, file2, sub/file1.
        let listing = try daemon.remote(["-t", "1", "-f"]).output
        let rows = listing.split(separator: "\n").filter { $0.contains("payload/") }
        let skipped = try #require(rows.firstIndex { $0.hasSuffix("sub/file1.bin") }, "\(listing)")
        #expect(try daemon.remote(["-t", "1", "-G", "\(skipped)"]).status == 0)
        #expect(try daemon.remote(["-t", "1", "-s"]).status == 0)

        let done = daemon.waitForRow("payload", seconds: 90) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        let files = try daemon.remote(["-t", "1", "-f"]).output
        for row in files.split(separator: "\n") where row.contains("payload/") {
            if row.hasSuffix("sub/file1.bin") {
                #expect(row.contains(" No "), "\(row)")
                // Only the edge it shares with a wanted file's piece (under 4 KiB of 2 MB); an estimate
                // from the torrent's share done would say 100 %.
                let percent =
                    Int(row.split(separator: " ").first { $0.hasSuffix("%") }?.dropLast() ?? "") ?? -1
                // Once seen under a loaded full run (90 %): the daemon's log says how the pieces came.
                #expect(percent >= 0 && percent < 5, "\(row)\n\(daemon.logText)")
            } else {
                #expect(row.contains("100%") && row.contains(" Yes "), "\(row)")
            }
        }
        for name in ["file0.bin", "file2.bin"] {
            #expect(
                FileManager.default.contentsEqual(
                    atPath: setup.data.appendingPathComponent(name).path,
                    andPath: downloads.appendingPathComponent("payload/\(name)").path))
        }
        let details = try daemon.remote(["-t", "1", "-i"]).output
        #expect(details.contains("Percent Done: 100%"), "\(details)")
    }
}
