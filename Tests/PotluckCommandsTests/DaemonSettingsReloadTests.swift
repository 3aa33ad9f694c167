import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// `potluck daemon --config FILE`: the command line wins over the file; SIGHUP applies a changed file
/// (limits, watch folder, whitelist) without a restart, and a broken file changes nothing.
@Suite(.serialized) struct DaemonSettingsReloadTests {
    @Test func sighupAppliesTheFileAndABrokenFileChangesNothing() throws {
        let (root, data) = try Interop.makePayload(sizes: [200_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let config = root.appendingPathComponent("settings.json")
        let watch = root.appendingPathComponent("watch")
        // The file's rpc-port is not the one served: --rpc, given by DaemonProcess, wins.
        try Data(
            #"{"rpc-port": 1, "speed-limit-up": 100, "speed-limit-up-enabled": true, "encryption": 1}"#.utf8
        ).write(to: config)
        let daemon = try DaemonInteropTests.DaemonProcess(
            state: root.appendingPathComponent("state"), downloads: data.deletingLastPathComponent(),
            peerPort: SeedInteropTests.freePort(on: "127.0.0.1"),
            log: root.appendingPathComponent("daemon.log"),
            extra: ["--config", config.path])
        let first = try daemon.remote(["-si"])
        #expect(first.status == 0, "\(daemon.logText)")
        #expect(first.output.contains("100 kB/s"), "\(first.output)")
        #expect(daemon.logText.contains("ignoring encryption"), "\(daemon.logText)")

        try Data(
            """
            {"speed-limit-up": 250, "speed-limit-up-enabled": true, "watch-dir": "\(watch.path)",
             "log-level": "debug"}
            """.utf8
        ).write(to: config)
        kill(daemon.process.processIdentifier, SIGHUP)
        #expect(Self.waitFor { (try? daemon.remote(["-si"]).output)?.contains("250 kB/s") == true })
        // The engine's limit changed with it (sampled into /metrics once a second).
        #expect(
            Self.waitFor {
                daemon.metrics.contains(#"potluck_rate_limit_bytes{direction="upload"} 250000.0"#)
            })
        #expect(daemon.logText.contains("reloaded \(config.path)"), "\(daemon.logText)")
        try FileManager.default.copyItem(
            atPath: torrent, toPath: watch.appendingPathComponent("dropped.torrent").path)
        #expect(Self.waitFor { daemon.listed("payload") != nil }, "\(daemon.logText)")

        try Data(#"{"speed-limit-up": "lots"#.utf8).write(to: config)
        kill(daemon.process.processIdentifier, SIGHUP)
        #expect(
            Self.waitFor { daemon.logText.contains("the settings in force are kept") }, "\(daemon.logText)")
        #expect(try daemon.remote(["-si"]).output.contains("250 kB/s"))

        #expect(daemon.metrics.contains(#"potluck_rate_limit_bytes{direction="upload"} 250000.0"#))

        try Data(#"{"rpc-whitelist": "10.9.9.9"}"#.utf8).write(to: config)
        kill(daemon.process.processIdentifier, SIGHUP)
        let metrics = "http://127.0.0.1:\(daemon.rpcPort)/metrics"
        #expect(
            Self.waitFor {
                (try? CreateInteropTests.run("/usr/bin/curl", ["-si", metrics]).output)?.hasPrefix(
                    "HTTP/1.1 403")
                    == true
            }, "\(daemon.logText)")
        #expect(daemon.terminate().status == 0)
    }

    /// Polls `condition` every 100 ms for up to 20 s.
    static func waitFor(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }
}
