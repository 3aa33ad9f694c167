import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// `potluck daemon` driven by real clients: Debian's transmission-remote, the `transmission-rpc`
/// Python library from PyPI, curl, and libtorrent seeders and leechers. Loopback only.
@Suite(.serialized) struct DaemonInteropTests {
    /// `potluck daemon` in the background, logging to a file.
    final class DaemonProcess {
        let process = Process()
        let rpcPort: UInt16
        let log: URL

        init(state: URL, downloads: URL, peerPort: UInt16, log: URL, extra: [String] = []) throws {
            rpcPort = SeedInteropTests.freePort(on: "127.0.0.1")
            self.log = log
            process.executableURL = potluckExecutable()
            process.arguments =
                [
                    "daemon", "--state", state.path, "--download-dir", downloads.path, "--rpc",
                    "127.0.0.1:\(rpcPort)", "--listen", "127.0.0.1:\(peerPort)", "--verbose",
                ] + extra
            process.standardOutput = FileHandle.nullDevice
            if !FileManager.default.fileExists(atPath: log.path) {
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            }
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            process.standardError = handle
            try process.run()
            waitUntilServing()
        }

        /// Until the RPC port accepts connections (at most 30 s).
        private func waitUntilServing() {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline && process.isRunning {
                if (try? remote(["-si"]).status) == 0 { return }
                usleep(100_000)
            }
        }

        /// Runs transmission-remote against this daemon.
        func remote(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try CreateInteropTests.run("/usr/bin/transmission-remote", ["127.0.0.1:\(rpcPort)"] + arguments)
        }

        /// The `-l` row of the torrent named `name`, if listed.
        func listed(_ name: String) -> String? {
            (try? remote(["-l"]).output)?.split(separator: "\n").first { $0.hasSuffix(" " + name) }.map(
                String.init)
        }

        /// Polls `-l` until `condition` holds for the row of `name` (nil: not listed), up to `seconds`.
        func waitForRow(_ name: String, seconds: Double = 30, _ condition: (String?) -> Bool) -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            var row = listed(name)
            while !condition(row) && Date() < deadline {
                usleep(250_000)
                row = listed(name)
            }
            return row
        }

        func killHard() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        /// SIGTERM; returns the exit status and the seconds it took.
        func terminate() -> (status: Int32, seconds: Double) {
            let started = Date()
            process.terminate()
            process.waitUntilExit()
            return (process.terminationStatus, Date().timeIntervalSince(started))
        }

        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// What `/metrics` serves now ("" if it cannot be read).
        var metrics: String {
            (try? CreateInteropTests.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(rpcPort)/metrics"])
                .output) ?? ""
        }

        deinit {
            if process.isRunning { killHard() }
        }
    }

    /// A daemon with a fresh state folder, and one small torrent added with transmission-remote; the
    /// caller removes `root`.
    static func daemonSeedingOneTorrent() throws -> (root: URL, daemon: DaemonProcess) {
        let (root, data) = try Interop.makePayload(sizes: [300_001])
        let torrent = try Interop.create(data, pieceSize: "32K")
        let daemon = try DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: data.deletingLastPathComponent(),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"))
        #expect(try daemon.remote(["-a", torrent]).status == 0)
        return (root, daemon)
    }

    static func scratch() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-daemon-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root
    }

    /// transmission-remote adds, lists, shows, stops and starts; a stop survives `kill -9`; remove
    /// forgets the torrent; SIGTERM ends the daemon with status 0 in under 10 s.
    @Test func transmissionRemoteDrivesTheDaemon() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_500_000, 300_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let state = root.appendingPathComponent("state")
        let log = root.appendingPathComponent("daemon.log")
        let peerPort = SeedInteropTests.freePort(on: "127.0.0.1")
        var daemon = try DaemonProcess(
            state: state, downloads: data.deletingLastPathComponent(), peerPort: peerPort, log: log)

        let added = try daemon.remote(["-a", torrent])
        #expect(added.status == 0 && added.output.contains("success"), "\(added.output)")
        // An engine torrent at rest (no peers, no trackers) may first report after 30 s: until then it
        // is listed as about to verify.
        let seeding = daemon.waitForRow("payload", seconds: 45) {
            $0?.contains("100%") == true && $0?.contains("Idle") == true
        }
        #expect(seeding?.contains("100%") == true, "\(seeding ?? "not listed")\n\(daemon.logText)")
        let details = try daemon.remote(["-t", "1", "-i"]).output
        #expect(details.contains("Name: payload"), "\(details)")
        #expect(details.contains("Percent Done: 100%"), "\(details)")
        let hash = try TrackerInteropTests.infoHash(torrent)
        #expect(details.contains("Hash: \(hash)"), "\(details)")
        #expect(try daemon.remote(["-si"]).output.contains("Potluck"))
        // A speed limit set by a client reaches the engine at once (its limit is in /metrics).
        #expect(try daemon.remote(["-u", "100"]).status == 0)
        let limited = try daemon.remote(["-si"]).output
        #expect(limited.contains("Upload speed limit: 100 kB/s"), "\(limited)")
        #expect(
            DaemonSettingsReloadTests.waitFor {
                daemon.metrics.contains(#"potluck_rate_limit_bytes{direction="upload"} 100000.0"#)
            }, "\(daemon.metrics)")
        #expect(try daemon.remote(["-U"]).status == 0)
        #expect(
            DaemonSettingsReloadTests.waitFor {
                daemon.metrics.contains(#"potluck_rate_limit_bytes{direction="upload"} 0.0"#)
            })

        #expect(try daemon.remote(["-t", "1", "-S"]).status == 0)
        #expect(daemon.waitForRow("payload") { $0?.contains("Stopped") == true }?.contains("Stopped") == true)
        // A stop is kept at once: after kill -9 the torrent comes back stopped.
        daemon.killHard()
        // A new port: the old one is an ephemeral port number, which the connections of tests running
        // in parallel may take while it is free.
        daemon = try DaemonProcess(
            state: state, downloads: data.deletingLastPathComponent(),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"), log: log)
        let restored = daemon.listed("payload")
        #expect(restored?.contains("Stopped") == true, "\(restored ?? "not listed")\n\(daemon.logText)")

        #expect(try daemon.remote(["-t", "1", "-s"]).status == 0)
        let started = daemon.waitForRow("payload", seconds: 5) { $0?.contains("Stopped") == false }
        #expect(started?.contains("Stopped") == false, "\(started ?? "not listed")")

        #expect(try daemon.remote(["-t", "1", "-r"]).status == 0)
        #expect(daemon.waitForRow("payload", seconds: 5) { $0 == nil } == nil)
        let kept = try FileManager.default.contentsOfDirectory(
            atPath: state.appendingPathComponent("torrents").path)
        #expect(kept.isEmpty, "\(kept)")
        // Removing without --remove-and-delete keeps the data.
        #expect(FileManager.default.fileExists(atPath: data.appendingPathComponent("file0.bin").path))

        let ended = daemon.terminate()
        #expect(ended.status == 0, "\(daemon.logText)")
        #expect(ended.seconds < 10)
    }

    /// The CSRF handshake over real HTTP: 409 with the session id, then success with it; a wrong id is
    /// refused again. `/` leads a browser to the web client.
    @Test func sessionIDHandshakeOverHTTP() throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let daemon = try DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: root.appendingPathComponent("downloads"),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"))
        let url = "http://127.0.0.1:\(daemon.rpcPort)/transmission/rpc"
        let body = #"{"method":"session-get","arguments":{"fields":["version","rpc-version"]},"tag":7}"#
        let first = try CreateInteropTests.run("/usr/bin/curl", ["-si", "-d", body, url])
        #expect(first.output.hasPrefix("HTTP/1.1 409"), "\(first.output)")
        let idLine = first.output.split(separator: "\r\n").first {
            $0.lowercased().hasPrefix("x-transmission-session-id:")
        }
        let id = try #require(
            idLine?.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces))
        let second = try CreateInteropTests.run(
            "/usr/bin/curl", ["-si", "-H", "X-Transmission-Session-Id: \(id)", "-d", body, url])
        #expect(second.output.hasPrefix("HTTP/1.1 200"), "\(second.output)")
        #expect(second.output.contains(#""result":"success""#), "\(second.output)")
        #expect(second.output.contains(#""rpc-version":17"#), "\(second.output)")
        #expect(second.output.contains(#""tag":7"#), "\(second.output)")
        let wrong = try CreateInteropTests.run(
            "/usr/bin/curl", ["-si", "-H", "X-Transmission-Session-Id: nope", "-d", body, url])
        #expect(wrong.output.hasPrefix("HTTP/1.1 409"), "\(wrong.output)")

        guard FileManager.default.fileExists(atPath: "/usr/share/transmission/web/index.html") else { return }
        let home = try CreateInteropTests.run(
            "/usr/bin/curl", ["-si", "http://127.0.0.1:\(daemon.rpcPort)/"])
        #expect(home.output.contains("Location: /transmission/web/"), "\(home.output)")
        let page = try CreateInteropTests.run(
            "/usr/bin/curl", ["-s", "http://127.0.0.1:\(daemon.rpcPort)/transmission/web/"])
        #expect(page.output.contains("<html"), "\(page.output.prefix(200))")
    }

    /// `transmission-remote --port-test`: the daemon asks the outside service (here a local web server
    /// standing in for Transmission's) about its peer port, and says what it answered, or why not.
    @Test func portTestAsksTheOutsideService() throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let peerPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let service = root.appendingPathComponent("service")
        try FileManager.default.createDirectory(at: service, withIntermediateDirectories: true)
        let answer = service.appendingPathComponent("\(peerPort)")
        try Data("1\n".utf8).write(to: answer)
        let webPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let web = Process()
        web.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        web.arguments = [
            "-m", "http.server", "\(webPort)", "--bind", "127.0.0.1", "--directory", service.path,
        ]
        web.standardOutput = FileHandle.nullDevice
        web.standardError = FileHandle.nullDevice
        try web.run()
        defer {
            // SIGKILL: a child spawned from a thread that ran a benchmark in this process inherits its
            // blocked SIGTERM, and Python's server would outlive the test.
            kill(web.processIdentifier, SIGKILL)
            web.waitUntilExit()
        }
        let daemon = try DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: root.appendingPathComponent("downloads"),
            peerPort: peerPort, log: root.appendingPathComponent("daemon.log"),
            extra: ["--port-test-url", "http://127.0.0.1:\(webPort)/{port}"])
        var open = try daemon.remote(["--port-test"])
        let deadline = Date().addingTimeInterval(10)
        while !open.output.contains("Port is open") && Date() < deadline {
            // The web server may not listen yet.
            usleep(200_000)
            open = try daemon.remote(["--port-test"])
        }
        #expect(open.output.contains("Port is open: Yes"), "\(open.output)")
        try Data("0".utf8).write(to: answer)
        let closed = try daemon.remote(["--port-test"])
        #expect(closed.output.contains("Port is open: No"), "\(closed.output)")
        try FileManager.default.removeItem(at: answer)
        let failed = try daemon.remote(["--port-test"])
        #expect(failed.output.contains("answered HTTP 404"), "\(failed.output)")
        #expect(daemon.terminate().status == 0)
    }

    /// The `transmission-rpc` library adds a torrent paused with a folder and labels, reads it back,
    /// and removes it with its data; the data is gone, the folder outside it untouched.
    @Test func pythonClientAddsReadsAndRemovesWithData() throws {
        let (root, data) = try Interop.makePayload(sizes: [700_000, 200_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let downloads = data.deletingLastPathComponent()
        let bystander = downloads.appendingPathComponent("bystander.txt")
        try Data("not the torrent's".utf8).write(to: bystander)
        let daemon = try DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: root.appendingPathComponent("other"),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"))
        let script = """
            import json, sys, time, transmission_rpc
            client = transmission_rpc.Client(host="127.0.0.1", port=int(sys.argv[1]))
            with open(sys.argv[2], "rb") as f:
                added = client.add_torrent(f, download_dir=sys.argv[3], paused=True, labels=["tv"])
            got = client.get_torrent(added.hashString)
            listed = [t.name for t in client.get_torrents()]
            client.remove_torrent(got.id, delete_data=True)
            left = [t.name for t in client.get_torrents()]
            print(json.dumps({"name": got.name, "status": str(got.status), "labels": got.labels,
                "dir": got.download_dir, "total": got.total_size, "listed": listed, "left": left,
                "version": client.server_version}))
            """
        let result = try CreateInteropTests.run(
            "/usr/bin/python3", ["-c", script, "\(daemon.rpcPort)", torrent, downloads.path])
        #expect(result.status == 0, "\(result.output)\n\(daemon.logText)")
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") }
        let json = try #require(
            line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] },
            "\(result.output)")
        #expect(json["name"] as? String == "payload")
        #expect(json["status"] as? String == "stopped")
        #expect(json["labels"] as? [String] == ["tv"])
        #expect(json["dir"] as? String == downloads.path)
        #expect(json["total"] as? Int == 900_001)
        #expect(json["listed"] as? [String] == ["payload"])
        #expect(json["left"] as? [String] == [])
        #expect(!FileManager.default.fileExists(atPath: data.path), "the torrent's folder is deleted")
        #expect(FileManager.default.fileExists(atPath: bystander.path), "files beside it stay")
    }

    /// A download through the daemon from libtorrent seeders found through opentracker, byte for byte;
    /// then `kill -9`: restarted, the torrent is back and seeding from its resume data without a
    /// recheck, and a libtorrent leecher downloads it from the daemon. A .torrent dropped into the
    /// watch folder is added and renamed. The on-completion program runs once, with Transmission's
    /// variables, for the download and not for the restored torrent.
    @Test func downloadsFromLibtorrentAndSeedsAfterKill9() throws {
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
        let watch = setup.root.appendingPathComponent("watch")
        let log = setup.root.appendingPathComponent("daemon.log")
        let peerPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let completions = setup.root.appendingPathComponent("completions.log")
        let script = setup.root.appendingPathComponent("done.sh")
        try Data(
            """
            #!/bin/sh
            echo "$TR_TORRENT_ID|$TR_TORRENT_HASH|$TR_TORRENT_NAME|$TR_TORRENT_DIR|$TR_APP_VERSION" >> \(completions.path)

            """.utf8
        ).write(to: script)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        let onComplete = ["--on-complete", script.path]
        var daemon = try DaemonProcess(
            state: state, downloads: downloads, peerPort: peerPort, log: log,
            extra: ["--watch", watch.path] + onComplete)
        try FileManager.default.copyItem(
            atPath: torrent, toPath: watch.appendingPathComponent("t.torrent").path)
        let done = daemon.waitForRow("payload", seconds: 90) { $0?.contains("100%") == true }
        #expect(done?.contains("100%") == true, "\(done ?? "not listed")\n\(daemon.logText)")
        #expect(FileManager.default.fileExists(atPath: watch.appendingPathComponent("t.torrent.added").path))
        #expect(Interop.sameContents(setup.data, downloads.appendingPathComponent("payload")))
        let hash = try TrackerInteropTests.infoHash(torrent)
        let ran = "1|\(hash)|payload|\(downloads.path)|4.0.6\n"
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && (try? String(contentsOf: completions, encoding: .utf8)) != ran {
            usleep(100_000)
        }
        #expect((try? String(contentsOf: completions, encoding: .utf8)) == ran, "\(daemon.logText)")

        daemon.killHard()
        // The log file is shared by both runs: what the second wrote starts here.
        let firstRunBytes = daemon.logText.utf8.count
        // A new port, as above.
        let restartedPort = SeedInteropTests.freePort(on: "127.0.0.1")
        daemon = try DaemonProcess(
            state: state, downloads: downloads, peerPort: restartedPort, log: log, extra: onComplete)
        let back = daemon.waitForRow("payload") {
            $0?.contains("100%") == true && $0?.contains("Idle") == true
        }
        #expect(back?.contains("100%") == true, "\(back ?? "not listed")\n\(daemon.logText)")
        // (Torrents log from their reactors while the daemon restores the rest: no ordering to rely on.)
        let afterRestart = String(
            decoding: Array(daemon.logText.utf8).dropFirst(firstRunBytes), as: UTF8.self)
        #expect(afterRestart.contains("pieces trusted"), "\(afterRestart)")
        #expect(!afterRestart.contains("checking existing files"), "\(afterRestart)")

        seeders.stop()
        let leeched = setup.root.appendingPathComponent("leecher")
        let leecher = try SeedInteropTests.harness(
            "lt.py",
            ["download", torrent, leeched.path, "--peer", "127.0.0.1:\(restartedPort)", "--timeout", "60"])
        #expect(leecher.status == 0, "\(leecher.json)\n\(daemon.logText)")
        #expect(Interop.sameContents(setup.data, leeched.appendingPathComponent("payload")))
        #expect(daemon.terminate().status == 0)
        #expect((try? String(contentsOf: completions, encoding: .utf8)) == ran, "run once, not on restore")
    }
}
