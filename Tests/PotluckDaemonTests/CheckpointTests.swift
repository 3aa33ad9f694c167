import Foundation
import Testing
import TorrentModel

@testable import Engine
@testable import PotluckDaemon

/// A `kill -9` between two checkpoints loses at most what moved since the last one: what a torrent
/// uploaded, how long an idle seed seeded, and the session's totals were saved only at a clean stop.
@Suite struct CheckpointTests {
    @Test func transferTotalsSurviveAKillAfterACheckpoint() throws {
        let fixture = try DaemonQueueTests.Fixture()
        let moved = try fixture.addTorrent("moved")
        let idle = try fixture.addTorrent("idle")
        let seeding = try fixture.addTorrent("seeding")
        fixture.backend.registry.withLock { registry in
            registry.torrents[TorrentID(value: moved)]!.runUploaded = 5_000
            registry.torrents[TorrentID(value: moved)]!.runDownloaded = 700
            registry.torrents[TorrentID(value: seeding)]!.settings.secondsSeeding = 42
        }
        fixture.backend.saveCheckpoint()
        #expect(
            fixture.backend.registry.withLock { $0.checkpointMarks[TorrentID(value: idle)] }
                == CheckpointMark())

        try fixture.restart(saving: false)
        let totals = fixture.backend.registry.withLock { registry -> (Int64, Int64, [Int64]) in
            let ever = registry.torrents.values.sorted { $0.id.value < $1.id.value }.map(\.uploadedEver)
            return (registry.totals.uploadedBytes, registry.totals.downloadedBytes, ever)
        }
        #expect(totals.0 == 5_000 && totals.1 == 700)
        #expect(totals.2.contains(5_000) && totals.2.contains(0), "\(totals.2)")
        let seeded = fixture.backend.registry.withLock { registry in
            registry.torrents.values.first { $0.name == "seeding" }?.settings.secondsSeeding
        }
        #expect(seeded == 42)
    }
}
