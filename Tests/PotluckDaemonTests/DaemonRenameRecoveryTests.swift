import Foundation
import Testing
import TransmissionRPC

@testable import Engine
@testable import PotluckDaemon

/// torrent-rename-path in the backend over a real engine: the engine refuses new paths while the
/// torrent runs, and a rename a kill cut between keeping it and making it is finished at the next start.
@Suite struct DaemonRenameRecoveryTests {
    @Test func aRenameCutByAKillIsFinishedAtTheNextStart() async throws {
        let fixture = try DaemonQueueTests.Fixture()
        let data = Array(repeating: UInt8(5), count: 3000)
        let id = try fixture.addTorrent("disc.iso", data: data)
        #expect(await fixture.keepBooks { await fixture.listing()["disc.iso"]?.status == .seeding })
        let engineID = TorrentID(value: id)
        #expect(throws: EngineError.self) { try fixture.engine.setFilePaths(engineID, [["other.iso"]]) }

        try await fixture.backend.renamePath(inTorrent: id, from: "disc.iso", to: "film.iso")
        let film = fixture.root.appendingPathComponent("film.iso").path
        #expect(FileManager.default.contents(atPath: film) == Data(data))
        #expect(await fixture.keepBooks { await fixture.listing()["film.iso"]?.status == .seeding })

        // As if killed after keeping a second rename and before making it.
        let (settings, hash) = try #require(
            fixture.backend.registry.withLock { registry in
                registry.torrents[engineID].map { ($0.settings, $0.hash) }
            })
        var kept = settings
        kept.renames?.append(PathRename(path: "film.iso", name: "final.iso"))
        try fixture.backend.state.save(kept, hash: hash)
        try fixture.restart(saving: false)
        let final = fixture.root.appendingPathComponent("final.iso").path
        #expect(FileManager.default.contents(atPath: final) == Data(data))
        #expect(!FileManager.default.fileExists(atPath: film))
        #expect(await fixture.keepBooks { await fixture.listing()["final.iso"]?.status == .seeding })
        let files = await fixture.backend.torrents(.all, fields: [.files]).torrents.first?.files
        #expect(files?.map(\.name) == ["final.iso"])
        #expect(files?.first?.bytesCompleted == 3000)
    }

    /// Renames are kept and replayed at every start, so a torrent takes at most `maximumRenames`.
    @Test func renamesAreBounded() async throws {
        let fixture = try DaemonQueueTests.Fixture()
        let id = try fixture.addTorrent("a.iso", data: Array(repeating: 1, count: 100))
        let engineID = TorrentID(value: id)
        fixture.backend.registry.withLock { registry in
            registry.torrents[engineID]!.settings.renames = Array(
                repeating: PathRename(path: "x", name: "y"), count: EngineBackend.maximumRenames)
        }
        await #expect(throws: RPCFailure.self) {
            try await fixture.backend.renamePath(inTorrent: id, from: "a.iso", to: "b.iso")
        }
    }
}
