import Foundation
import Hashing
import Logging
import Metainfo
import Testing
import TransmissionRPC
import URing

@testable import Engine
@testable import PotluckDaemon

/// The backend's queue, seed idle limit and reannounce over a real engine (one reactor, loopback, no
/// peers): torrents whose data is missing download for ever, one whose data is there seeds.
@Suite struct DaemonQueueTests {
    /// A backend whose state folder outlives it: `restart` stops the engine, saves, and restores
    /// everything into a new engine and backend, as the daemon does at its next start.
    final class Fixture {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-queue-\(UUID())")
        private(set) var engine: Engine
        private(set) var backend: EngineBackend

        /// `listening`: the engine accepts peers on a loopback port (`engine.boundAddress`).
        init(listening: Bool = false) throws {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            (engine, backend) = try Self.open(root, listening: listening)
        }

        private static func open(_ root: URL, listening: Bool = false) throws -> (Engine, EngineBackend) {
            var options = EngineOptions()
            options.reactors = 1
            if listening { options.listenAddress = SocketAddress("127.0.0.1:0") }
            let engine = try Engine(options: options)
            let state = try StateFolder(root: root.appendingPathComponent("state").path)
            let overrides = state.loadSessionSettings()
            let backend = EngineBackend(
                engine: engine, state: state,
                session: EngineBackend.sessionSettings(
                    laying: overrides,
                    over: SessionSettings(downloadDirectory: root.path, configDirectory: state.root)),
                overrides: overrides, logger: Logger(label: "test"))
            // As the daemon does: what waits for a torrent to stop hears of it (ends with the engine).
            Task.detached { await backend.followEngineEvents() }
            return (engine, backend)
        }

        /// Without `saving`, as after a `kill -9`: only what was kept at once is found again.
        func restart(saving: Bool = true) throws {
            engine.shutdown()
            if saving { backend.saveAll() }
            (engine, backend) = try Self.open(root)
            backend.restore()
        }

        /// Adds a one-piece torrent named `name`; with `data`, the file is written first (so it seeds),
        /// else it is missing (and the torrent waits for peers that never come).
        @discardableResult
        func addTorrent(_ name: String, data: [UInt8]? = nil) throws -> Int {
            if let data { try Data(data).write(to: root.appendingPathComponent(name)) }
            guard case .added(let identity) = try backend.add(Self.torrent(name, content: data)) else {
                throw RPCFailure("not added")
            }
            return identity.id
        }

        /// A one-piece torrent of `content` (by default some bytes from `name`) named `name`.
        static func torrent(_ name: String, content: [UInt8]? = nil) -> [UInt8] {
            let content = content ?? Array(name.utf8) + Array(repeating: 7, count: 1000)
            let pieceHash = SHA1.hash(content).bytes
            let info =
                Array(
                    "d6:lengthi\(content.count)e4:name\(name.utf8.count):\(name)12:piece lengthi16384e6:pieces20:"
                        .utf8)
                + pieceHash + Array("e".utf8)
            return Array("d4:info".utf8) + info + Array("e".utf8)
        }

        /// Each torrent's status and queue position by name.
        func listing() async -> [String: (status: TorrentStatus, position: Int)] {
            let torrents = await backend.torrents(.all, fields: [.name, .status, .queuePosition]).torrents
            return Dictionary(uniqueKeysWithValues: torrents.map { ($0.name, ($0.status, $0.queuePosition)) })
        }

        /// Runs the daemon's once-a-second bookkeeping until `condition` holds (at most 10 s).
        func keepBooks(until condition: () async -> Bool) async -> Bool {
            for _ in 0..<100 {
                if await condition() { return true }
                backend.keepBooks()
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
            return await condition()
        }

        deinit {
            engine.shutdown()
            try? FileManager.default.removeItem(at: root)
        }
    }

    static func session(_ values: [SessionSettingKey: JSONValue]) throws -> SessionChanges {
        var changes = SessionChanges()
        for (key, value) in values { try changes.set(key, to: value) }
        return changes
    }

    static let running: Set<TorrentStatus> = [.checkWait, .checking, .downloading]

    /// A download queue of one: the first added runs, the others wait (status 3) in the order added;
    /// a stop frees the slot for the first waiting by position, and a removal closes the gap.
    @Test func aQueueOfOneRunsOneAndStartsTheNextByPosition() async throws {
        let fixture = try Fixture()
        try await fixture.backend.updateSession(Self.session([.downloadQueueSize: .integer(1)]))
        let a = try fixture.addTorrent("a")
        try fixture.addTorrent("b")
        let c = try fixture.addTorrent("c")
        var listing = await fixture.listing()
        #expect(Self.running.contains(listing["a"]!.status), "\(listing)")
        #expect(listing["b"]!.status == .downloadWait && listing["c"]!.status == .downloadWait, "\(listing)")
        #expect(listing.mapValues(\.position) == ["a": 0, "b": 1, "c": 2])
        #expect(fixture.engine.snapshot(TorrentID(value: a))?.activity != .paused)

        // Moving c first starts nothing (a runs on), but c has the next turn.
        try await fixture.backend.perform(.queueMoveTop, on: .only([.id(c)]))
        listing = await fixture.listing()
        #expect(listing.mapValues(\.position) == ["c": 0, "a": 1, "b": 2])
        #expect(listing["c"]!.status == .downloadWait)
        try await fixture.backend.perform(.stop, on: .only([.id(a)]))
        #expect(await fixture.keepBooks { await Self.running.contains(fixture.listing()["c"]!.status) })
        listing = await fixture.listing()
        #expect(listing["a"]!.status == .stopped && listing["b"]!.status == .downloadWait, "\(listing)")

        // A start queues a behind b (c holds the slot); start-now bypasses the queue.
        try await fixture.backend.perform(.start, on: .only([.id(a)]))
        #expect(await fixture.listing()["a"]!.status == .downloadWait)
        try await fixture.backend.perform(.startNow, on: .only([.id(a)]))
        #expect(await fixture.keepBooks { await Self.running.contains(fixture.listing()["a"]!.status) })

        try await fixture.backend.remove(.only([.id(c)]), deletingLocalData: false)
        listing = await fixture.listing()
        #expect(listing.mapValues(\.position) == ["a": 0, "b": 1])
        // Two ran (a bypassed the queue); with c gone one still does, so b goes on waiting.
        #expect(listing["b"]!.status == .downloadWait, "\(listing)")
        try await fixture.backend.updateSession(Self.session([.downloadQueueEnabled: .bool(false)]))
        #expect(await fixture.keepBooks { await Self.running.contains(fixture.listing()["b"]!.status) })
    }

    /// Positions set by torrent-set and the queue moves are kept with each torrent: after a restart
    /// the first by position takes the one slot, whatever the order the torrents were added in.
    @Test func theOrderSurvivesARestart() async throws {
        let fixture = try Fixture()
        try await fixture.backend.updateSession(Self.session([.downloadQueueSize: .integer(1)]))
        for name in ["a", "b", "c", "d"] { try fixture.addTorrent(name) }
        let ids = Dictionary(
            uniqueKeysWithValues: await fixture.backend.torrents(.all, fields: [.name]).torrents.map {
                ($0.name, $0.id)
            })
        try await fixture.backend.perform(.queueMoveBottom, on: .only([.id(ids["a"]!)]))
        var changes = TorrentChanges()
        changes.queuePosition = 0
        try await fixture.backend.change(.only([.id(ids["d"]!)]), changes)
        try await fixture.backend.perform(.stop, on: .only([.id(ids["b"]!)]))
        let before = await fixture.listing().mapValues(\.position)
        #expect(before == ["d": 0, "b": 1, "c": 2, "a": 3])

        try fixture.restart()
        let listing = await fixture.listing()
        #expect(listing.mapValues(\.position) == before)
        #expect(Self.running.contains(listing["d"]!.status), "\(listing)")
        #expect(listing["b"]!.status == .stopped)
        #expect(listing["c"]!.status == .downloadWait && listing["a"]!.status == .downloadWait, "\(listing)")

        // Two removed in one request close both gaps, and the new positions are kept at once.
        let removed = await fixture.backend.torrents(.all, fields: [.name]).torrents.filter {
            ["d", "c"].contains($0.name)
        }
        try await fixture.backend.remove(.only(removed.map { .id($0.id) }), deletingLocalData: false)
        try fixture.restart(saving: false)
        #expect(await fixture.listing().mapValues(\.position) == ["b": 0, "a": 1])
    }

    /// A download that moved no data for `queue-stalled-minutes` (here 0) is stalled and takes no slot;
    /// session-stats counts a waiting torrent as not running, as Transmission does.
    @Test func aStalledDownloadTakesNoSlot() async throws {
        let fixture = try Fixture()
        try await fixture.backend.updateSession(Self.session([.downloadQueueSize: .integer(1)]))
        let a = try fixture.addTorrent("a")
        try fixture.addTorrent("b")
        #expect(await fixture.listing()["b"]!.status == .downloadWait)
        let statistics = await fixture.backend.sessionStatistics()
        #expect(statistics.activeTorrentCount == 1 && statistics.pausedTorrentCount == 1)

        try await fixture.backend.updateSession(Self.session([.queueStalledMinutes: .integer(0)]))
        #expect(await fixture.keepBooks { await Self.running.contains(fixture.listing()["b"]!.status) })
        let stalled = await fixture.backend.torrents(.only([.id(a)]), fields: [.isStalled]).torrents
        #expect(stalled.first?.isStalled == true)
        #expect(await fixture.backend.sessionStatistics().activeTorrentCount == 2)
    }

    /// Seeds have a queue of their own (off by default): a full download queue holds back neither a
    /// torrent added with its data there nor, after a restart, one whose resume data says complete.
    @Test func theDownloadQueueHoldsNoSeed() async throws {
        let fixture = try Fixture()
        try await fixture.backend.updateSession(Self.session([.downloadQueueSize: .integer(1)]))
        try fixture.addTorrent("a")
        try fixture.addTorrent("b")
        try fixture.addTorrent("s1", data: Array(repeating: 4, count: 5000))
        try fixture.addTorrent("s2", data: Array(repeating: 5, count: 5000))
        func settled() async -> Bool {
            let listing = await fixture.listing()
            return listing["s1"]!.status == .seeding && listing["s2"]!.status == .seeding
                && listing["a"]!.status == .downloading
        }
        var didSettle = await fixture.keepBooks(until: settled)
        var listing = await fixture.listing()
        #expect(didSettle, "\(listing)")
        #expect(listing["b"]!.status == .downloadWait)

        try fixture.restart()
        didSettle = await fixture.keepBooks(until: settled)
        listing = await fixture.listing()
        #expect(didSettle, "\(listing)")
        #expect(listing["b"]!.status == .downloadWait)
    }

    /// A seed idle limit of 0 minutes stops a seed at once: stopped (not paused) and finished, like a
    /// reached ratio; unlimited, it seeds on.
    @Test func anIdleSeedStopsAtItsLimit() async throws {
        let fixture = try Fixture()
        let idle = try fixture.addTorrent("idle", data: Array(repeating: 1, count: 3000))
        let kept = try fixture.addTorrent("kept", data: Array(repeating: 2, count: 3000))
        let patient = try fixture.addTorrent("patient", data: Array(repeating: 3, count: 3000))
        var changes = TorrentChanges()
        changes.seedIdleMode = .single
        changes.seedIdleLimit = 10
        try await fixture.backend.change(.only([.id(patient)]), changes)
        changes = TorrentChanges()
        changes.seedIdleMode = .single
        changes.seedIdleLimit = 0
        try await fixture.backend.change(.only([.id(idle)]), changes)
        // The session's limit of 0 applies to "kept" until it is made unlimited.
        try await fixture.backend.updateSession(
            Self.session([.idleSeedingLimitEnabled: .bool(true), .idleSeedingLimit: .integer(0)]))
        changes = TorrentChanges()
        changes.seedIdleMode = .unlimited
        try await fixture.backend.change(.only([.id(kept)]), changes)
        #expect(await fixture.keepBooks { await fixture.listing()["idle"]!.status == .stopped })
        #expect(await fixture.keepBooks { await fixture.listing()["patient"]!.status == .seeding })
        let torrents = await fixture.backend.torrents(.all, fields: [.name, .status, .isFinished, .etaIdle])
            .torrents
        let stopped = try #require(torrents.first { $0.name == "idle" })
        #expect(stopped.isFinished)
        #expect(torrents.first { $0.name == "kept" }?.status == .seeding)
        #expect(torrents.first { $0.name == "kept" }?.etaIdle == -1)
        // Ten minutes from its start, less the seconds this test has taken (minutes on a loaded machine).
        let eta = try #require(torrents.first { $0.name == "patient" }?.etaIdle)
        #expect((1...600).contains(eta), "\(eta)")
        // Not paused by a client: torrent-start starts it again.
        #expect(
            !(fixture.backend.registry.withLock { $0.torrents[TorrentID(value: idle)]?.settings.paused }
                ?? true))
    }

    /// A seed stopped by its idle or ratio limit stays stopped (and finished) after a kill and a
    /// restart, even once the limit no longer applies; torrent-start seeds it again.
    @Test func aSeedStoppedByItsLimitStaysStoppedAfterAKill() async throws {
        let fixture = try Fixture()
        let idle = try fixture.addTorrent("idle", data: Array(repeating: 1, count: 3000))
        let ratio = try fixture.addTorrent("ratio", data: Array(repeating: 2, count: 3000))
        _ = try fixture.addTorrent("other", data: Array(repeating: 3, count: 3000))
        var changes = TorrentChanges()
        changes.seedIdleMode = .single
        changes.seedIdleLimit = 0
        try await fixture.backend.change(.only([.id(idle)]), changes)
        changes = TorrentChanges()
        changes.seedRatioMode = .single
        changes.seedRatioLimit = 0
        try await fixture.backend.change(.only([.id(ratio)]), changes)
        let bothStopped = {
            let torrents = await fixture.backend.torrents(.all, fields: [.name, .status, .isFinished])
                .torrents
            return ["idle", "ratio"].allSatisfy { name in
                torrents.contains { $0.name == name && $0.status == .stopped && $0.isFinished }
            }
        }
        #expect(await fixture.keepBooks(until: bothStopped))
        #expect(await fixture.keepBooks { await fixture.listing()["other"]!.status == .seeding })
        // Neither limit would stop them any more; they stay stopped all the same.
        changes = TorrentChanges()
        changes.seedIdleMode = .unlimited
        changes.seedRatioMode = .unlimited
        try await fixture.backend.change(.only([.id(idle), .id(ratio)]), changes)

        try fixture.restart(saving: false)
        #expect(await fixture.keepBooks { await fixture.listing()["other"]!.status == .seeding })
        for _ in 0..<5 { fixture.backend.keepBooks() }
        #expect(await bothStopped())
        for id in [idle, ratio] {
            #expect(fixture.engine.snapshot(TorrentID(value: id))?.activity == .paused)
        }
        let statistics = await fixture.backend.sessionStatistics()
        #expect(statistics.activeTorrentCount == 1 && statistics.pausedTorrentCount == 2)

        try await fixture.backend.perform(.start, on: .only([.id(idle)]))
        #expect(await fixture.keepBooks { await fixture.listing()["idle"]!.status == .seeding })
        try fixture.restart(saving: false)
        #expect(await fixture.keepBooks { await fixture.listing()["idle"]!.status == .seeding })
        #expect(await fixture.listing()["ratio"]!.status == .stopped)
    }

    /// With a seed queue of one already taken, a download that finishes waits to seed (status 5)
    /// instead of seeding; once the other seed stops, it seeds. Its data comes from a second engine,
    /// seeding on loopback, that connects to the daemon's.
    @Test func aFinishedDownloadWaitsForASlotInTheSeedQueue() async throws {
        let fixture = try Fixture(listening: true)
        try await fixture.backend.updateSession(
            Self.session([.seedQueueEnabled: .bool(true), .seedQueueSize: .integer(1)]))
        let seed = try fixture.addTorrent("seed", data: Array(repeating: 4, count: 3000))
        #expect(await fixture.keepBooks { await fixture.listing()["seed"]!.status == .seeding })
        let content = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let bytes = Fixture.torrent("fetched", content: content)
        guard case .added = try fixture.backend.add(bytes) else { throw RPCFailure("not added") }
        #expect(await Self.running.contains(fixture.listing()["fetched"]!.status))

        let elsewhere = fixture.root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try Data(content).write(to: elsewhere.appendingPathComponent("fetched"))
        var options = EngineOptions()
        options.reactors = 1
        let seeder = try Engine(options: options)
        defer { seeder.shutdown() }
        var seeding = DownloadOptions(
            downloadDirectory: elsewhere.path, peers: [try #require(fixture.engine.boundAddress)])
        seeding.seedWhenComplete = true
        try seeder.add(try Metainfo(bytes: bytes), options: seeding)

        let waits = await fixture.keepBooks { await fixture.listing()["fetched"]!.status == .seedWait }
        let listing = await fixture.listing()
        #expect(waits, "\(listing)")
        #expect(listing["seed"]!.status == .seeding)
        #expect(
            FileManager.default.contents(atPath: fixture.root.appendingPathComponent("fetched").path)
                == Data(content))
        try await fixture.backend.perform(.stop, on: .only([.id(seed)]))
        #expect(await fixture.keepBooks { await fixture.listing()["fetched"]!.status == .seeding })
        #expect(await fixture.listing()["seed"]!.status == .stopped)
    }
}
