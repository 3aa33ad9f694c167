import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// torrent-get trackerStats, per tracker: Debian's transmission-remote (`-it`) and a raw RPC read
/// what a working opentracker (with a libtorrent seeder) and a dead one each said.
@Suite(.serialized) struct DaemonTrackerStatsTests {
    @Test func eachTrackerShowsItsOwnOutcome() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [400_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        // A second opentracker, stopped: its port refuses connections.
        let gone = try TrackerInteropTests.payloadAndTracker(sizes: [1000])
        gone.tracker.stop()
        try? FileManager.default.removeItem(at: gone.root)
        let dead = gone.http
        let bare = setup.root.appendingPathComponent("bare.torrent").path
        let announced = try TrackerInteropTests.create(setup.data, trackers: [setup.http], name: "t.torrent")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", announced, setup.data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        #expect(try TrackerInteropTests.waitForSeeders(1, torrent: announced).count == 1)

        let daemon = try DaemonInteropTests.DaemonProcess(
            state: setup.root.appendingPathComponent("state"),
            downloads: setup.root.appendingPathComponent("downloads"),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: setup.root.appendingPathComponent("daemon.log"), extra: ["--no-dht", "--no-lsd"])
        defer { _ = daemon.terminate() }
        #expect(try daemon.remote(["-a", bare]).status == 0)
        // The dead tracker first: it fails, and the working one of the next tier is asked at once.
        _ = try DaemonRenameTests.python(
            "client.change_torrent(1, tracker_list=[[sys.argv[2]], [sys.argv[3]]])\nprint('{}')",
            port: daemon.rpcPort, arguments: [dead, setup.http])

        // Downloaded, and `completed` answered (no announce due now): the figures read next are settled.
        let done = daemon.waitForRow("payload", seconds: 60) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        var shown = ""
        for _ in 0..<60 {
            shown = try daemon.remote(["-t", "1", "-it"]).output
            if shown.contains("Got a list of"), shown.contains("Tracker had"), shown.contains("scrape error"),
                !shown.contains("peers in 0 seconds"), !shown.contains("peers now")
            {
                break
            }
            sleep(1)
        }
        let sections = shown.components(separatedBy: "Tracker 1:")
        #expect(sections.count == 2, "\(shown)\n\(daemon.logText)")
        let deadSection = sections.first ?? ""
        let liveSection = sections.last ?? ""
        #expect(deadSection.contains("Got an error \""), "\(shown)")
        #expect(deadSection.contains("Got a scrape error"), "\(shown)")
        #expect(!deadSection.contains("Got a list of"), "\(shown)")
        #expect(liveSection.contains("Got a list of"), "\(shown)")
        // The libtorrent seeder, and ourselves once `completed` is answered.
        #expect(
            liveSection.contains("Tracker had 1 seeders") || liveSection.contains("Tracker had 2 seeders"),
            "\(shown)")
        #expect(liveSection.contains("Asking for more peers in"), "\(shown)")

        let raw = try DaemonRenameTests.python(
            """
            import urllib.request, urllib.error
            url = "http://127.0.0.1:%s/transmission/rpc" % sys.argv[1]
            body = json.dumps({"method": "torrent-get",
                "arguments": {"ids": [1], "fields": ["trackerStats"]}}).encode()
            def post(headers):
                return urllib.request.urlopen(urllib.request.Request(url, body, headers))
            try:
                reply = post({})
            except urllib.error.HTTPError as error:
                reply = post({"X-Transmission-Session-Id": error.headers["X-Transmission-Session-Id"]})
            print(json.dumps({"stats": json.loads(reply.read())["arguments"]["torrents"][0]["trackerStats"]}))
            """, port: daemon.rpcPort)
        let stats = try #require(raw["stats"] as? [[String: Any]], "\(raw)")
        #expect(stats.count == 2 && stats.allSatisfy { $0.count == 27 }, "\(stats)")
        let failing = try #require(stats.first { $0["announce"] as? String == dead })
        let working = try #require(stats.first { $0["announce"] as? String == setup.http })
        #expect(failing["tier"] as? Int == 0 && working["tier"] as? Int == 1)
        #expect(
            failing["hasAnnounced"] as? Bool == true && failing["lastAnnounceSucceeded"] as? Bool == false)
        #expect((failing["lastAnnounceResult"] as? String)?.isEmpty == false, "\(failing)")
        #expect(failing["lastAnnouncePeerCount"] as? Int == 0 && failing["seederCount"] as? Int == -1)
        #expect(failing["lastScrapeSucceeded"] as? Bool == false && failing["hasScraped"] as? Bool == true)
        #expect(working["lastAnnounceSucceeded"] as? Bool == true, "\(working)")
        #expect(working["lastAnnounceResult"] as? String == "Success")
        // The seeder, and perhaps ourselves (opentracker may hand a peer its own address).
        #expect(working["lastAnnouncePeerCount"] as? Int ?? 0 >= 1, "\(working)")
        #expect([1, 2].contains(working["seederCount"] as? Int ?? 0), "\(working)")
        #expect(
            working["lastScrapeSucceeded"] as? Bool == true && working["downloadCount"] as? Int ?? -1 >= 0)
        #expect(working["announceState"] as? Int == 1, "\(working)")
        let announcedAt = working["lastAnnounceTime"] as? Int ?? 0
        let now = Int(time(nil))
        #expect(announcedAt > now - 120 && announcedAt <= now, "\(working)")
        #expect((working["lastAnnounceStartTime"] as? Int ?? 0) <= announcedAt)
        #expect((working["nextAnnounceTime"] as? Int ?? 0) > announcedAt, "\(working)")
        #expect((working["nextScrapeTime"] as? Int ?? 0) > now, "\(working)")
        #expect(failing["isBackup"] as? Bool == false && working["isBackup"] as? Bool == false)
    }
}
