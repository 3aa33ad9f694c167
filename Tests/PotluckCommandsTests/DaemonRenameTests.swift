import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// torrent-rename-path on a seeding torrent, through the `transmission-rpc` client from PyPI
/// (Debian's transmission-remote 3.00 has no `--rename`): files renamed on disk and in torrent-get, a
/// libtorrent leecher served the renamed files, and the renames kept across `kill -9` without a recheck.
@Suite(.serialized) struct DaemonRenameTests {
    /// Runs `calls` (Python, with `client` connected and `call(f, *args)` giving the result or the
    /// error's text) and returns the JSON object it prints.
    /// `arguments` follow the port in `sys.argv`.
    static func python(_ calls: String, port: UInt16, arguments: [String] = []) throws -> [String: Any] {
        let script = """
            import json, sys, transmission_rpc
            client = transmission_rpc.Client(host="127.0.0.1", port=int(sys.argv[1]))
            def call(f, *args):
                try:
                    return f(*args)
                except Exception as error:
                    return "error: " + str(error)
            \(calls)
            """
        let result = try CreateInteropTests.run("/usr/bin/python3", ["-c", script, "\(port)"] + arguments)
        #expect(result.status == 0, "\(result.output)")
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") }
        return try #require(
            line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] },
            "\(result.output)")
    }

    @Test func renamedFilesAreSeededAndKeptAcrossKill9() throws {
        let (root, data) = try Interop.makePayload(sizes: [400_001, 300_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let original = root.appendingPathComponent("original")
        try FileManager.default.copyItem(at: data, to: original)
        let downloads = data.deletingLastPathComponent()
        let state = root.appendingPathComponent("state")
        let log = root.appendingPathComponent("daemon.log")
        let peerPort = SeedInteropTests.freePort(on: "127.0.0.1")
        var daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: peerPort, log: log, extra: ["--no-dht", "--no-lsd"])
        #expect(try daemon.remote(["-a", torrent]).status == 0)
        let seeding = daemon.waitForRow("payload", seconds: 45) { $0?.contains("100%") == true }
        #expect(seeding?.contains("100%") == true, "\(seeding ?? "not listed")\n\(daemon.logText)")

        let renamed = try Self.python(
            """
            results = [
                call(client.rename_torrent_path, 1, "payload/sub", "extras"),
                call(client.rename_torrent_path, 1, "payload", "show"),
                call(client.rename_torrent_path, 1, "show/file0.bin", "a/b"),
                call(client.rename_torrent_path, 1, "show/nope", "x"),
                call(client.rename_torrent_path, 1, "show/file0.bin", "extras"),
            ]
            got = client.get_torrent(1)
            print(json.dumps({"results": [str(r) for r in results], "name": got.name,
                "files": sorted(f.name for f in got.get_files())}))
            """, port: daemon.rpcPort)
        let results = renamed["results"] as? [String] ?? []
        #expect(results.count == 5, "\(renamed)")
        #expect(results.prefix(2).allSatisfy { !$0.hasPrefix("error") }, "\(results)\n\(daemon.logText)")
        #expect(results.dropFirst(2).first?.contains("invalid name") == true, "\(results)")
        #expect(results.dropFirst(3).first?.contains("no file or folder") == true, "\(results)")
        #expect(results.dropFirst(4).first?.contains("already exists") == true, "\(results)")
        #expect(renamed["name"] as? String == "show")
        #expect(renamed["files"] as? [String] == ["show/extras/file1.bin", "show/file0.bin"])
        let show = downloads.appendingPathComponent("show")
        #expect(!FileManager.default.fileExists(atPath: data.path))
        #expect(FileManager.default.fileExists(atPath: show.appendingPathComponent("extras/file1.bin").path))
        #expect(FileManager.default.fileExists(atPath: show.appendingPathComponent("file0.bin").path))

        // Seeding on from the renamed files, checked by their resume data (nothing hashed again).
        let again = daemon.waitForRow("show", seconds: 30) { $0?.contains("100%") == true }
        #expect(again?.contains("100%") == true, "\(again ?? "not listed")\n\(daemon.logText)")
        #expect(daemon.logText.contains("resume data: 22 of 22 pieces trusted\n"), "\(daemon.logText)")
        let leeched = root.appendingPathComponent("leecher")
        let leecher = try SeedInteropTests.harness(
            "lt.py",
            ["download", torrent, leeched.path, "--peer", "127.0.0.1:\(peerPort)", "--timeout", "60"])
        #expect(leecher.status == 0, "\(leecher.json)\n\(daemon.logText)")
        #expect(Interop.sameContents(original, leeched.appendingPathComponent("payload")))

        // kill -9: the torrent comes back renamed, complete from its resume data.
        daemon.killHard()
        try Data().write(to: log)
        daemon = try DaemonInteropTests.DaemonProcess(
            state: state, downloads: downloads, peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: log,
            extra: ["--no-dht", "--no-lsd"])
        let back = daemon.waitForRow("show", seconds: 45) { $0?.contains("100%") == true }
        #expect(back?.contains("100%") == true, "\(back ?? "not listed")\n\(daemon.logText)")
        #expect(daemon.logText.contains("resume data: 22 of 22 pieces trusted\n"), "\(daemon.logText)")
        let files = try Self.python(
            """
            print(json.dumps({"files": sorted(f.name for f in client.get_torrent(1).get_files())}))
            """, port: daemon.rpcPort)
        #expect(files["files"] as? [String] == ["show/extras/file1.bin", "show/file0.bin"])

        // --move takes the renamed files along.
        let moved = root.appendingPathComponent("moved")
        #expect(try daemon.remote(["-t", "1", "--move", moved.path]).status == 0)
        let arrived = LocalDiscoveryInteropTests.eventually(15) {
            FileManager.default.fileExists(atPath: moved.appendingPathComponent("show/extras/file1.bin").path)
        }
        #expect(arrived, "\(daemon.logText)")
        for (was, now) in [("file0.bin", "show/file0.bin"), ("sub/file1.bin", "show/extras/file1.bin")] {
            #expect(
                FileManager.default.contentsEqual(
                    atPath: original.appendingPathComponent(was).path,
                    andPath: moved.appendingPathComponent(now).path), "\(now)")
        }
        let seedsThere = daemon.waitForRow("show", seconds: 30) { $0?.contains("100%") == true }
        #expect(seedsThere?.contains("100%") == true, "\(seedsThere ?? "not listed")\n\(daemon.logText)")
    }
}
