import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// torrent-set's tracker edits driven by Debian's transmission-remote (`--tracker-add`,
/// `--tracker-remove`, `-it`) against a real opentracker and a libtorrent seeder announcing to it.
@Suite(.serialized) struct DaemonTrackerEditTests {
    /// A torrent without trackers finds nobody; once a tracker is added it finds the seeder there and
    /// downloads. The edited list survives `kill -9`; a removed tracker is told `stopped`, and the
    /// removal survives a restart too.
    @Test func anAddedTrackerIsAnnouncedToAndKeptAcrossRestarts() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [700_000, 300_001])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let bare = setup.root.appendingPathComponent("bare.torrent").path
        let announced = try TrackerInteropTests.create(setup.data, trackers: [setup.http], name: "t.torrent")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", announced, setup.data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        #expect((seeder.ready?["peers"] as? [String])?.count == 1)
        // The seeder is counted by the tracker before the daemon asks for peers.
        #expect(try TrackerInteropTests.waitForSeeders(1, torrent: announced).count == 1)

        let state = setup.root.appendingPathComponent("state")
        let downloads = setup.root.appendingPathComponent("downloads")
        let log = setup.root.appendingPathComponent("daemon.log")
        // No DHT and no LSD: the tracker is the only way to the seeder.
        let extra = ["--no-dht", "--no-lsd"]
        // One port for every run, as a daemon keeps it: the tracker counts a peer by address and port,
        // and a run killed after announcing would otherwise stay counted beside the next one.
        let peerPort = SeedInteropTests.freePort(on: "127.0.0.1")
        func startDaemon() throws -> DaemonInteropTests.DaemonProcess {
            try DaemonInteropTests.DaemonProcess(
                state: state, downloads: downloads, peerPort: peerPort, log: log, extra: extra)
        }
        var daemon = try startDaemon()
        #expect(try daemon.remote(["-a", bare]).status == 0)
        #expect(try !daemon.remote(["-t", "1", "-it"]).output.contains("Tracker"))
        sleep(3)
        let alone = daemon.listed("payload")
        #expect(alone?.contains(" 0%") == true, "\(alone ?? "not listed")")

        let added = try daemon.remote(["-t", "1", "--tracker-add", setup.http])
        #expect(added.status == 0 && added.output.contains("success"), "\(added.output)")
        let done = daemon.waitForRow("payload", seconds: 60) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        #expect(Interop.sameContents(setup.data, downloads.appendingPathComponent("payload")))
        // transmission-remote shows each tracker by id and host.
        let shown = "Tracker 0: 127.0.0.1"
        let listed = try daemon.remote(["-t", "1", "-it"]).output
        #expect(listed.contains(shown), "\(listed)")
        let again = try daemon.remote(["-t", "1", "--tracker-add", setup.http])
        #expect(again.output.contains("already listed"), "\(again.output)")

        // kill -9 right after the edit: the list was kept before the reply.
        daemon.killHard()
        daemon = try startDaemon()
        let kept = try daemon.remote(["-t", "1", "-it"]).output
        #expect(kept.contains(shown), "\(kept)")

        // 4.0's trackerList (as the transmission-rpc client sends it): the tracker still listed keeps
        // its id; setting the list back drops the other.
        let edited = try DaemonRenameTests.python(
            """
            def listed():
                fields = client.get_torrent(1, arguments=["id", "trackers", "trackerList"]).fields
                return {"ids": [t["id"] for t in fields["trackers"]], "tiers": [t["tier"] for t in fields["trackers"]],
                    "text": fields["trackerList"]}
            client.change_torrent(1, tracker_list=[[sys.argv[2]], [sys.argv[3]]])
            both = listed()
            client.change_torrent(1, tracker_list=[[sys.argv[2]]])
            print(json.dumps({"both": both, "one": listed()}))
            """, port: daemon.rpcPort, arguments: [setup.http, setup.udp])
        let both = edited["both"] as? [String: Any]
        #expect(both?["ids"] as? [Int] == [0, 1], "\(edited)")
        #expect(both?["tiers"] as? [Int] == [0, 1], "\(edited)")
        #expect(both?["text"] as? String == "\(setup.http)\n\n\(setup.udp)\n", "\(edited)")
        #expect((edited["one"] as? [String: Any])?["ids"] as? [Int] == [0], "\(edited)")

        // Seeding, it is counted by the tracker beside the libtorrent seeder...
        let counted = try TrackerInteropTests.waitForSeeders(2, torrent: announced)
        #expect(counted.first?["seeders"] as? Int == 2, "\(counted)\n\(daemon.logText)")
        let unknown = try daemon.remote(["-t", "1", "--tracker-remove", "7"])
        #expect(unknown.output.contains("no tracker has id 7"), "\(unknown.output)")
        let removed = try daemon.remote(["-t", "1", "--tracker-remove", "0"])
        #expect(removed.status == 0 && removed.output.contains("success"), "\(removed.output)")
        #expect(try !daemon.remote(["-t", "1", "-it"]).output.contains("Tracker"))
        // ...and a removed tracker is told `stopped`.
        #expect(try TrackerInteropTests.waitForSeeders(1, torrent: announced).first?["seeders"] as? Int == 1)
        #expect(daemon.terminate().status == 0)
        daemon = try startDaemon()
        let gone = try daemon.remote(["-t", "1", "-it"]).output
        #expect(!gone.contains("Tracker"), "\(gone)")
    }

    /// A magnet link without trackers waits for its metadata with nobody to ask; a tracker added
    /// meanwhile is announced to at once, and the seeder it names delivers the metadata and the files.
    @Test func aTrackerAddedWhileFetchingMetadataIsAnnouncedTo() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [300_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let bare = setup.root.appendingPathComponent("bare.torrent").path
        let announced = try TrackerInteropTests.create(setup.data, trackers: [setup.http], name: "t.torrent")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", announced, setup.data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        #expect(try TrackerInteropTests.waitForSeeders(1, torrent: announced).count == 1)

        let downloads = setup.root.appendingPathComponent("downloads")
        let daemon = try DaemonInteropTests.DaemonProcess(
            state: setup.root.appendingPathComponent("state"), downloads: downloads,
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: setup.root.appendingPathComponent("daemon.log"), extra: ["--no-dht", "--no-lsd"])
        defer { _ = daemon.terminate() }
        let magnet = "magnet:?xt=urn:btih:\(try TrackerInteropTests.infoHash(bare))&dn=payload"
        #expect(try daemon.remote(["-a", magnet]).status == 0)
        // The fetch is under way, with nobody to ask.
        sleep(2)

        let added = try daemon.remote(["-t", "1", "--tracker-add", setup.http])
        #expect(added.status == 0 && added.output.contains("success"), "\(added.output)")
        let done = daemon.waitForRow("payload", seconds: 60) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        #expect(Interop.sameContents(setup.data, downloads.appendingPathComponent("payload")))
    }
}
