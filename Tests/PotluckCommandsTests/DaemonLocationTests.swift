import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// Where the daemon keeps a torrent's data, driven by Debian's transmission-remote: an incomplete
/// folder the files leave once verified, `--move` and `--find` (torrent-set-location), a `kill -9`
/// that forgets none of it, and `--allowed-dirs` refusing folders outside what the operator allows.
@Suite(.serialized) struct DaemonLocationTests {
    static func folderHoldsPayload(_ folder: URL) -> Bool {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent("payload").path)
    }

    @Test func dataMovesOutOfTheIncompleteFolderAndWhereverTheClientSays() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [2_000_000, 500_001])
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

        let state = setup.root.appendingPathComponent("state")
        let downloads = setup.root.appendingPathComponent("downloads")
        let partial = setup.root.appendingPathComponent("partial")
        let media = setup.root.appendingPathComponent("media")
        let log = setup.root.appendingPathComponent("daemon.log")
        let extra = ["--incomplete-dir", partial.path, "--allowed-dirs", media.path]
        var daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: log,
            extra: extra)
        #expect(try daemon.remote(["-a", torrent]).status == 0)
        let done = daemon.waitForRow("payload", seconds: 90) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        // Complete: the files left the incomplete folder for the download folder.
        let arrived = LocalDiscoveryInteropTests.eventually(15) { Self.folderHoldsPayload(downloads) }
        #expect(arrived, "\(daemon.logText)")
        #expect(Interop.sameContents(setup.data, downloads.appendingPathComponent("payload")))
        #expect(!Self.folderHoldsPayload(partial))
        #expect(try daemon.remote(["-t", "1", "-i"]).output.contains("Location: \(downloads.path)"))

        // --move: the data goes where the client says, and the torrent seeds on from there.
        let moved = media.appendingPathComponent("shows")
        #expect(try daemon.remote(["-t", "1", "--move", moved.path]).status == 0)
        #expect(
            LocalDiscoveryInteropTests.eventually(15) { Self.folderHoldsPayload(moved) }, "\(daemon.logText)")
        #expect(!Self.folderHoldsPayload(downloads))
        let seeding = daemon.waitForRow("payload", seconds: 30) { $0?.contains("Seeding") == true }
        #expect(seeding?.contains("100%") == true, "\(seeding ?? "not listed")\n\(daemon.logText)")

        // A folder outside those allowed is refused with the reason, and nothing moves.
        let refused = try daemon.remote([
            "-t", "1", "--move", setup.root.appendingPathComponent("elsewhere").path,
        ])
        #expect(refused.output.contains("outside the folders"), "\(refused.output)")
        let sneaky = try daemon.remote(["-t", "1", "--move", media.path + "/../elsewhere"])
        #expect(sneaky.output.contains(".."), "\(sneaky.output)")
        #expect(Self.folderHoldsPayload(moved))
        for option in ["-c", "-w"] {  // session-set's incomplete-dir and download-dir
            let outside = try daemon.remote([option, setup.root.appendingPathComponent("elsewhere").path])
            #expect(outside.output.contains("outside the folders"), "\(option): \(outside.output)")
        }

        // kill -9: the torrent comes back in its new folder, complete, without a recheck.
        daemon.killHard()
        seeders.stop()
        daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: log,
            extra: extra)
        let info = try daemon.remote(["-t", "1", "-i"]).output
        #expect(info.contains("Location: \(moved.path)"), "\(info)")
        let back = daemon.waitForRow("payload", seconds: 45) { $0?.contains("100%") == true }
        #expect(back?.contains("100%") == true, "\(back ?? "not listed")\n\(daemon.logText)")

        // --find: the client copied the data elsewhere itself; the torrent takes it from there.
        let copy = media.appendingPathComponent("copy")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        let copied = try CreateInteropTests.run(
            "/bin/cp", ["-a", moved.appendingPathComponent("payload").path, copy.path])
        #expect(copied.status == 0)
        #expect(try daemon.remote(["-t", "1", "--find", copy.path]).status == 0)
        let found = LocalDiscoveryInteropTests.eventually(15) {
            (try? daemon.remote(["-t", "1", "-i"]).output)?.contains("Location: \(copy.path)") == true
        }
        #expect(found, "\(daemon.logText)")
        let again = daemon.waitForRow("payload", seconds: 45) { $0?.contains("100%") == true }
        #expect(again?.contains("100%") == true, "\(again ?? "not listed")\n\(daemon.logText)")
    }
}
