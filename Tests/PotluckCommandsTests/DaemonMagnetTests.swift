import Foundation
import Glibc
import Metainfo
import Testing

@testable import PotluckBench

/// The daemon takes magnet links from `transmission-remote -a`, as Sonarr and Radarr send them.
@Suite(.serialized) struct DaemonMagnetTests {
    /// Added while no peer answers, the link survives `kill -9` (kept as the link, shown by its `dn`);
    /// once its seeder is up the metadata arrives, the .torrent is kept in its place, and the download
    /// completes byte-identical.
    @Test func aMagnetLinkSurvivesKill9BeforeItsMetadataAndThenDownloads() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_200_000, 77])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let hash = try TrackerInteropTests.infoHash(torrent)
        // The seeder's port is chosen now and named in the link; the seeder starts later.
        let seederPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let link = "magnet:?xt=urn:btih:\(hash)&dn=payload&x.pe=127.0.0.1:\(seederPort)"
        let state = root.appendingPathComponent("state")
        let downloads = root.appendingPathComponent("downloads")
        let log = root.appendingPathComponent("daemon.log")
        var daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"), log: log
        )
        let added = try daemon.remote(["-a", link])
        #expect(added.status == 0 && added.output.contains("success"), "\(added.output)")
        let waiting = daemon.waitForRow("payload", seconds: 5) { $0 != nil }
        // transmission-remote: no size yet (n/a), no peers (Idle), and not done.
        #expect(
            waiting?.contains("n/a") == true && waiting?.contains("Unknown") == true,
            "\(waiting ?? "not listed")")
        let magnetFile = state.appendingPathComponent("torrents/\(hash).magnet").path
        #expect(FileManager.default.fileExists(atPath: magnetFile))
        let info = try daemon.remote(["-t", "1", "-i"])
        #expect(info.output.contains("Magnet: magnet:?xt=urn:btih:\(hash)"), "\(info.output)")

        daemon.killHard()
        daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"), log: log
        )
        #expect(daemon.listed("payload") != nil, "\(daemon.logText)")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--bind",
            "127.0.0.1",
            "--port-base", "\(seederPort)",
        ])
        defer { seeder.stop() }
        // The fetch retries the peer with a back-off of at most a minute.
        let done = daemon.waitForRow("payload", seconds: 90) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        #expect(Interop.sameContents(data, downloads.appendingPathComponent("payload")))
        #expect(
            FileManager.default.fileExists(
                atPath: state.appendingPathComponent("torrents/\(hash).torrent").path))
        #expect(!FileManager.default.fileExists(atPath: magnetFile))
        #expect(daemon.logText.contains("metadata received and kept"), "\(daemon.logText)")
    }

    /// BEP 53: the files a link's `so=` leaves out are unwanted in the daemon too, as
    /// `transmission-remote -f` shows, also after a restart; only the chosen file is downloaded.
    @Test func theFilesALinkSelectsAreTheWantedOnes() throws {
        let (root, data) = try Interop.makePayload(sizes: [800_000, 100_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let seederPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(seederPort)")
        seeder.waitUntilListening(host: "127.0.0.1", port: seederPort)
        let state = root.appendingPathComponent("state")
        let downloads = root.appendingPathComponent("downloads")
        let log = root.appendingPathComponent("daemon.log")
        var daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"), log: log
        )
        let link =
            try MagnetInteropTests.magnet(torrent, peers: ["127.0.0.1:\(seederPort)"]) + "&so=1"
        #expect(try daemon.remote(["-a", link]).output.contains("success"))
        let done = daemon.waitForRow("payload", seconds: 60) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        /// The `Get` column of each file's row, in the torrent's order.
        func wanted() throws -> [String] {
            try daemon.remote(["-t", "1", "-f"]).output.split(separator: "\n")
                .filter { $0.contains("payload/") }
                .map { $0.split(separator: " ", omittingEmptySubsequences: true)[3].lowercased() }
        }
        #expect(try wanted() == ["no", "yes"], "\(daemon.logText)")
        let chosen = "payload/sub/file1.bin"
        #expect(
            FileManager.default.contents(atPath: downloads.appendingPathComponent(chosen).path)
                == FileManager.default.contents(atPath: data.appendingPathComponent("sub/file1.bin").path))
        #expect(daemon.terminate().status == 0)
        daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"), log: log
        )
        #expect(try wanted() == ["no", "yes"], "\(daemon.logText)")
    }

    /// A hybrid torrent added by its v2-only link is kept, once its metadata arrives, under its v1
    /// infohash, which its resume data and its .torrent go by: after two restarts it is still there,
    /// paused as it was left and complete, and adding its .torrent finds it. (Its state was split
    /// between the two names: the second restart brought back the first run's settings.)
    @Test func aHybridAddedByItsV2LinkIsKeptUnderItsV1Infohash() throws {
        let (root, data) = try Interop.makePayload(sizes: [300_000, 70_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K", format: "hybrid")
        let metainfo = try Metainfo(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: torrent))))
        let v2 = try #require(metainfo.infoHashV2)
        let seederPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(seederPort)")
        seeder.waitUntilListening(host: "127.0.0.1", port: seederPort)
        let state = root.appendingPathComponent("state")
        let downloads = root.appendingPathComponent("downloads")
        let log = root.appendingPathComponent("daemon.log")
        func start() throws -> DaemonInteropTests.DaemonProcess {
            try DaemonInteropTests.DaemonProcess(
                state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
                log: log)
        }
        var daemon = try start()
        let link = "magnet:?xt=urn:btmh:1220\(v2)&dn=payload&x.pe=127.0.0.1:\(seederPort)"
        #expect(try daemon.remote(["-a", link]).output.contains("success"))
        let done = daemon.waitForRow("payload", seconds: 60) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        let kept = try FileManager.default.contentsOfDirectory(
            atPath: state.appendingPathComponent("torrents").path)
        let v1 = metainfo.wireInfoHash.hex
        #expect(Set(kept) == ["\(v1).torrent", "\(v1).json"], "\(kept)")
        #expect(try daemon.remote(["-t", "1", "-S"]).status == 0)
        #expect(daemon.terminate().status == 0)
        for _ in 0..<2 {
            daemon = try start()
            let row = daemon.waitForRow("payload", seconds: 20) { $0?.contains("Stopped") == true }
            #expect(
                row?.contains("100%") == true && row?.contains("Stopped") == true, "\(row ?? "not listed")")
            #expect(daemon.terminate().status == 0)
        }
        daemon = try start()
        #expect(try daemon.remote(["-a", torrent]).status == 0)
        let rows = try daemon.remote(["-l"]).output.split(separator: "\n").filter { $0.hasSuffix(" payload") }
        #expect(rows.count == 1, "\(rows)")
    }

    /// A malformed link is refused with the reason; a v2-only one is taken, under its v2 infohash cut to
    /// the 20 bytes peers know it by.
    @Test func aMalformedLinkIsRefusedWithTheReasonAndAV2OnlyOneTaken() throws {
        let root = try DaemonInteropTests.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let daemon = try DaemonInteropTests.DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: root.appendingPathComponent("downloads"),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"))
        let malformed = try daemon.remote(["-a", "magnet:?xt=urn:btih:1234"])
        #expect(malformed.output.contains("invalid magnet link"), "\(malformed.output)")
        let v2 = try daemon.remote([
            "-a", "magnet:?xt=urn:btmh:1220\(String(repeating: "ab", count: 32))&dn=v2",
        ])
        #expect(v2.output.contains("success"), "\(v2.output)")
        let info = try daemon.remote(["-t", "1", "-i"]).output
        #expect(info.contains("Hash: \(String(repeating: "ab", count: 20))"), "\(info)")
    }

    /// torrent-add with a URL, as indexers serve them: a .torrent is fetched and added, a redirect to a
    /// magnet link adds the link, and a missing or oversized answer is refused with the reason.
    @Test func torrentsAreAddedByURL() throws {
        let (root, data) = try Interop.makePayload(sizes: [100_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let other = String(repeating: "cd", count: 20)
        let server = try harnessProcess([
            Interop.tool("torrent_url_server.py"), torrent, "magnet:?xt=urn:btih:\(other)&dn=via-redirect",
        ])
        defer { server.stop() }
        let url = try #require(server.ready?["url"] as? String)
        let daemon = try DaemonInteropTests.DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: root.appendingPathComponent("downloads"),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"))
        let file = try daemon.remote(["-a", url + "/file.torrent"])
        #expect(file.output.contains("success"), "\(file.output)\n\(daemon.logText)")
        #expect(daemon.listed("payload") != nil)
        let redirect = try daemon.remote(["-a", url + "/magnet"])
        #expect(redirect.output.contains("success"), "\(redirect.output)\n\(daemon.logText)")
        #expect(daemon.listed("via-redirect") != nil)
        #expect(try daemon.remote(["-a", url + "/missing"]).output.contains("HTTP 404"))
        #expect(try daemon.remote(["-a", url + "/huge"]).output.contains("more than 16 MiB"))
        #expect(
            try daemon.remote(["-a", "ftp://127.0.0.1/x.torrent"]).output.contains("only http and https"))
        let unsendable = try daemon.remote(["-a", "http://127.0.0.1/a b.torrent"]).output
        #expect(unsendable.contains("is not a URL that can be fetched"), "\(unsendable)")

        // torrent-add's `cookies` (a private tracker's indexer): sent to the URL's host, not to the
        // host a redirect names.
        let script = """
            import sys, transmission_rpc
            client = transmission_rpc.Client(host="127.0.0.1", port=int(sys.argv[1]))
            for path, cookies in [("/private.torrent", None), ("/elsewhere", "uid=1; pass=secret"),
                                  ("/private.torrent", "uid=1; pass=secret")]:
                try:
                    client.add_torrent(sys.argv[2] + path, cookies=cookies)
                    print("added")
                except Exception as error:
                    print("refused:", error)
            """
        let result = try CreateInteropTests.run("/usr/bin/python3", ["-c", script, "\(daemon.rpcPort)", url])
        let lines = result.output.split(separator: "\n").filter {
            $0.hasPrefix("added") || $0.hasPrefix("refused")
        }
        #expect(lines.count == 3, "\(result.output)\n\(daemon.logText)")
        #expect(lines.first?.contains("HTTP 403") == true, "\(result.output)")
        #expect(lines.dropFirst().first?.contains("HTTP 403") == true, "\(result.output)")
        #expect(lines.last == "added", "\(result.output)\n\(daemon.logText)")
    }
}
