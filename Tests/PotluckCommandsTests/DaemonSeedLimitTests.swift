import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// A seed stopped by its ratio limit, driven by Debian's transmission-remote: finished, and still so
/// after `kill -9` and a restart, until `--start`.
@Suite(.serialized) struct DaemonSeedLimitTests {
    @Test func aSeedStoppedByItsRatioStaysStoppedAfterKill9() throws {
        let (root, data) = try Interop.makePayload(sizes: [300_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let state = root.appendingPathComponent("state")
        let log = root.appendingPathComponent("daemon.log")
        func startDaemon() throws -> DaemonInteropTests.DaemonProcess {
            try DaemonInteropTests.DaemonProcess(
                state: state, downloads: data.deletingLastPathComponent(),
                peerPort: SeedInteropTests.freePort(on: "127.0.0.1"), log: log,
                extra: ["--no-dht", "--no-lsd"])
        }
        var daemon = try startDaemon()
        #expect(try daemon.remote(["-a", torrent]).status == 0)
        let seeding = daemon.waitForRow("payload", seconds: 45) {
            $0?.contains("Idle") == true || $0?.contains("Seeding") == true
        }
        #expect(seeding != nil, "\(daemon.logText)")
        // A ratio of 0 is reached at once; unlimited afterwards, nothing would stop it again.
        #expect(try daemon.remote(["-t", "1", "-sr", "0"]).status == 0)
        let finished = daemon.waitForRow("payload", seconds: 30) { $0?.contains("Finished") == true }
        #expect(finished != nil, "\(daemon.listed("payload") ?? "not listed")\n\(daemon.logText)")
        // Kept from the moment the daemon says so.
        let kept = LocalDiscoveryInteropTests.eventually(10) {
            daemon.logText.contains("its seed ratio limit stopped it")
        }
        #expect(kept, "\(daemon.logText)")
        #expect(try daemon.remote(["-t", "1", "-SR"]).status == 0)

        daemon.killHard()
        daemon = try startDaemon()
        // Restored torrents are started (or not) at once; a few seconds show it is not seeding.
        sleep(3)
        let back = daemon.listed("payload")
        #expect(back?.contains("Finished") == true, "\(back ?? "not listed")\n\(daemon.logText)")
        #expect(try daemon.remote(["-t", "1", "--start"]).status == 0)
        let again = daemon.waitForRow("payload", seconds: 30) {
            $0?.contains("Idle") == true || $0?.contains("Seeding") == true
        }
        #expect(again != nil, "\(daemon.listed("payload") ?? "not listed")\n\(daemon.logText)")
    }
}
