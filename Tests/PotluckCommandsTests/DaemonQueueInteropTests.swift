import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// `potluck daemon`'s queue and reannounce, driven by the `transmission-rpc` Python library (which
/// has the queue calls transmission-remote lacks) and transmission-remote. Loopback only.
@Suite(.serialized) struct DaemonQueueInteropTests {
    typealias DaemonProcess = DaemonInteropTests.DaemonProcess

    /// Looks at the torrents named by `hashes` (in that order) until one downloads and the others
    /// wait (at most 20 s), and prints their statuses and queue positions. `add` first sets a download
    /// queue of one and adds the .torrent files; `top` then moves the last torrent to the top.
    static let queueScript = """
        import json, sys, time, transmission_rpc
        client = transmission_rpc.Client(host="127.0.0.1", port=int(sys.argv[1]))
        mode, hashes, files = sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
        if mode == "add":
            client.set_session(download_queue_size=1)
            for path in files:
                with open(path, "rb") as f:
                    client.add_torrent(f)
        def rows():
            got = {t.hashString: t for t in client.get_torrents(
                arguments=["id", "hashString", "status", "queuePosition"])}
            return [got[h] for h in hashes if h in got]
        def report():
            torrents = rows()
            return {"status": [t.get("status") for t in torrents],
                    "position": [t.get("queuePosition") for t in torrents]}
        deadline = time.time() + 20
        while time.time() < deadline and sorted(report()["status"]) != [3] * (len(hashes) - 1) + [4]:
            time.sleep(0.25)
        out = report()
        if mode == "add":
            client.queue_top(rows()[-1].id)
            out["afterTop"] = report()
        print(json.dumps(out))
        """

    static func queueReport(
        _ daemon: DaemonProcess, _ mode: String, hashes: [String], files: [String] = []
    )
        throws -> [String: Any]
    {
        let result = try CreateInteropTests.run(
            "/usr/bin/python3",
            ["-c", queueScript, "\(daemon.rpcPort)", mode, hashes.joined(separator: ",")] + files)
        #expect(result.status == 0, "\(result.output)\n\(daemon.logText)")
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") }
        return try #require(
            line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] },
            "\(result.output)")
    }

    /// A download queue of one with three torrents whose data is nowhere: the first added downloads,
    /// the others are queued (status 3) in the order added; queue-move-top puts the last first, and
    /// that order, with the top one downloading, is what the daemon comes back with after `kill -9`
    /// and after a clean restart.
    @Test func aQueueOfOneKeepsItsOrderAcrossRestarts() throws {
        let root = try DaemonInteropTests.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        var files: [String] = []
        var hashes: [String] = []
        for index in 0..<3 {
            let (payloadRoot, data) = try Interop.makePayload(sizes: [100_000 + index])
            defer { try? FileManager.default.removeItem(at: payloadRoot) }
            let file = root.appendingPathComponent("\(index).torrent")
            try FileManager.default.copyItem(
                atPath: try Interop.create(data, pieceSize: "32K"), toPath: file.path)
            files.append(file.path)
            hashes.append(try TrackerInteropTests.infoHash(file.path))
        }
        let state = root.appendingPathComponent("state")
        let downloads = root.appendingPathComponent("downloads")
        let log = root.appendingPathComponent("daemon.log")
        func startDaemon() throws -> DaemonProcess {
            try DaemonProcess(
                state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
                log: log)
        }
        var daemon = try startDaemon()

        let added = try Self.queueReport(daemon, "add", hashes: hashes, files: files)
        #expect(added["status"] as? [Int] == [4, 3, 3], "\(added)\n\(daemon.logText)")
        #expect(added["position"] as? [Int] == [0, 1, 2], "\(added)")
        let moved = added["afterTop"] as? [String: Any]
        // The running torrent runs on: a move only changes whose turn is next.
        #expect(moved?["status"] as? [Int] == [4, 3, 3], "\(added)")
        #expect(moved?["position"] as? [Int] == [1, 2, 0], "\(added)")
        let listed = try daemon.remote(["-l"]).output
        #expect(listed.components(separatedBy: " Queued ").count - 1 == 2, "\(listed)")

        daemon.killHard()
        daemon = try startDaemon()
        let afterKill = try Self.queueReport(daemon, "look", hashes: hashes)
        #expect(afterKill["position"] as? [Int] == [1, 2, 0], "\(afterKill)\n\(daemon.logText)")
        #expect(afterKill["status"] as? [Int] == [3, 3, 4], "\(afterKill)")

        #expect(daemon.terminate().status == 0)
        daemon = try startDaemon()
        let afterRestart = try Self.queueReport(daemon, "look", hashes: hashes)
        #expect(afterRestart["position"] as? [Int] == [1, 2, 0], "\(afterRestart)\n\(daemon.logText)")
        #expect(afterRestart["status"] as? [Int] == [3, 3, 4], "\(afterRestart)")
    }

    /// transmission-remote --reannounce makes a seeding torrent announce again at once (seen by the
    /// tracker, well before its 30-minute interval); asked again within a minute, nothing is sent.
    @Test func reannounceAnnouncesAtOnceButNotTwiceInAMinute() throws {
        let (root, data) = try Interop.makePayload(sizes: [200_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let requests = root.appendingPathComponent("requests.txt")
        let tracker = try harnessProcess([
            Interop.tool("bad_tracker.py"), "plain", "--requests", requests.path,
        ])
        defer { tracker.stop() }
        let http = try #require(tracker.ready?["http"] as? String)
        let torrent = try TrackerInteropTests.create(data, trackers: [http], name: "t.torrent")
        let daemon = try DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: data.deletingLastPathComponent(),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"))
        // The daemon also scrapes the tracker (for trackerStats): only announces count here.
        func announces() -> [String] {
            ((try? String(contentsOf: requests, encoding: .utf8)) ?? "").split(separator: "\n").map(
                String.init
            ).filter { !$0.contains("/scrape") }
        }
        #expect(try daemon.remote(["-a", torrent]).status == 0)
        #expect(
            DaemonSettingsReloadTests.waitFor { announces().count == 1 }, "\(announces())\n\(daemon.logText)")
        #expect(announces().first?.contains("event=started") == true, "\(announces())")

        #expect(try daemon.remote(["-t", "1", "--reannounce"]).status == 0)
        #expect(
            DaemonSettingsReloadTests.waitFor { announces().count == 2 }, "\(announces())\n\(daemon.logText)")
        #expect(announces().last?.contains("event=") == false, "\(announces())")

        #expect(try daemon.remote(["-t", "1", "--reannounce"]).status == 0)
        sleep(3)
        #expect(announces().count == 2, "\(announces())")
        #expect(daemon.logText.contains("reannounce ignored"), "\(daemon.logText)")
    }
}
