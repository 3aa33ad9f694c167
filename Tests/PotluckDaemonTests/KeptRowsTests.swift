import Testing
import TransmissionRPC

@testable import Engine
@testable import PotluckDaemon

/// torrent-get's kept rows (`EngineBackend.torrentRows`) are those written from fresh snapshots,
/// before and after whatever changes a row: the torrent, its engine record, the session, time.
@Suite struct KeptRowsTests {
    typealias Fixture = DaemonQueueTests.Fixture

    static let fields: [TorrentField] = [
        .id, .name, .status, .queuePosition, .uploadRatio, .percentDone, .leftUntilDone, .isStalled,
        .etaIdle, .eta, .error, .errorString, .peersConnected, .isFinished, .rateUpload,
    ]

    /// Each torrent's row from the kept rows, and as written from snapshots taken just before and
    /// just after (the same, else the torrents changed meanwhile and it is asked again).
    static func rows(
        _ fixture: Fixture, _ layout: TorrentRowLayout, _ selection: TorrentSelection = .all
    ) async throws -> (kept: [String], fresh: [String]) {
        func fresh() async -> [String] {
            await fixture.backend.torrents(selection, fields: Set(layout.fields)).torrents.map {
                String(decoding: layout.row(of: $0), as: UTF8.self)
            }
        }
        for _ in 0..<50 {
            let before = await fresh()
            let kept = try #require(await fixture.backend.torrentRows(selection, layout: layout)?.rows)
            if await fresh() == before { return (kept.map { String(decoding: $0, as: UTF8.self) }, before) }
        }
        throw RPCFailure("the torrents kept changing")
    }

    @Test(arguments: [TorrentGetFormat.objects, .table])
    func keptRowsFollowEveryChange(_ format: TorrentGetFormat) async throws {
        let fixture = try Fixture()
        let layout = TorrentRowLayout(fields: Self.fields, format: format)
        let seed = try fixture.addTorrent("seed", data: Array(repeating: 1, count: 3000))
        let download = try fixture.addTorrent("download")
        func check(_ comment: Comment) async throws {
            // Twice: made, then kept.
            for _ in 0..<2 {
                let (kept, fresh) = try await Self.rows(fixture, layout)
                #expect(kept == fresh, comment)
            }
        }
        try await check("added")
        #expect(await fixture.keepBooks { await fixture.listing()["seed"]?.status == .seeding })
        try await check("seeding")
        let before = try await Self.rows(fixture, layout).kept

        // Changed in the engine alone: the daemon's torrent stays as it was.
        let inEngine = TorrentID(value: download)
        try fixture.engine.pause(inEngine)
        for _ in 0..<100 where fixture.engine.snapshot(inEngine)?.activity != .paused {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        try await check("paused in the engine")
        #expect(await fixture.listing()["download"]?.status == .stopped)
        try fixture.engine.resume(inEngine)

        try await fixture.backend.perform(.queueMoveTop, on: .only([.id(download)]))
        try await check("moved in the queue")
        try await fixture.backend.perform(.stop, on: .only([.id(seed)]))
        #expect(await fixture.keepBooks { await fixture.listing()["seed"]?.status == .stopped })
        try await check("stopped")
        try await fixture.backend.perform(.start, on: .only([.id(seed)]))
        #expect(await fixture.keepBooks { await fixture.listing()["seed"]?.status == .seeding })
        try await check("started again")
        // The session's idle limit shows in the seed's `etaIdle`; the download stalls after a minute.
        try await fixture.backend.updateSession(
            DaemonQueueTests.session([
                .idleSeedingLimitEnabled: .bool(true), .idleSeedingLimit: .integer(5),
                .queueStalledEnabled: .bool(true), .queueStalledMinutes: .integer(1),
            ]))
        try await check("idle limit")
        #expect(try await Self.rows(fixture, layout).kept != before)

        try await fixture.backend.remove(.only([.id(download)]), deletingLocalData: false)
        let (kept, fresh) = try await Self.rows(fixture, layout)
        #expect(kept == fresh)
        #expect(kept.count == 1)
        #expect(fixture.backend.registry.withLock { $0.keptRows.first?.rows.count } == 1)
        _ = try fixture.addTorrent("added")
        try await check("added after rows were kept")
        #expect(try await Self.rows(fixture, layout).kept.count == 2)
        // A layout of other fields makes its rows anew.
        let other = TorrentRowLayout(fields: [.id, .hashString], format: format)
        let rows = try await Self.rows(fixture, other, .only([.id(seed)]))
        #expect(rows.kept == rows.fresh)
        // The first layout's rows were kept beside, and are brought up to date when it is asked again.
        try await fixture.backend.perform(.stop, on: .only([.id(seed)]))
        try await check("stopped while another layout was asked for")
        let third = TorrentRowLayout(fields: [.id, .name], format: format)
        #expect(try await Self.rows(fixture, third).kept.count == 2)
        let layouts = fixture.backend.registry.withLock { $0.keptRows.map(\.layout) }
        #expect(layouts == [third, layout], "the two asked for last, the latest first")
    }

    /// A row that shows time passing is kept for its second only: a download's (`isStalled`) while
    /// downloads can stall, a seed's under an idle limit (`etaIdle`); others for as long as they
    /// stay as they are.
    @Test func rowsThatShowTimePassingAreKeptForTheirSecond() async throws {
        let fixture = try Fixture()
        let layout = TorrentRowLayout(fields: [.id, .isStalled, .etaIdle], format: .table)
        let download = try fixture.addTorrent("download")
        let seed = try fixture.addTorrent("seed", data: Array(repeating: 1, count: 3000))
        #expect(await fixture.keepBooks { await fixture.listing()["seed"]?.status == .seeding })
        func seconds() async throws -> [Bool?] {
            let (kept, fresh) = try await Self.rows(fixture, layout)
            #expect(kept == fresh)
            return fixture.backend.registry.withLock { registry in
                let kept = registry.keptRows[0]
                return [download, seed].map {
                    kept.position(of: TorrentID(value: $0)).map(kept.timed.contains)
                }
            }
        }
        // Downloads stall by default (`queue-stalled-enabled`); seeds have no idle limit.
        #expect(try await seconds() == [true, false])
        try await fixture.backend.updateSession(
            DaemonQueueTests.session([
                .queueStalledEnabled: .bool(false), .idleSeedingLimitEnabled: .bool(true),
            ]))
        #expect(try await seconds() == [false, true])
    }
}
