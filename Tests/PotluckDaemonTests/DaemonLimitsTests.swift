import Foundation
import Logging
import Testing
import TransmissionRPC

@testable import Engine
@testable import PotluckDaemon

/// session-set, torrent-set and a reload's settings reach the engine's limits at once.
@Suite struct DaemonLimitsTests {
    /// A backend over a one-reactor engine, its state in a scratch folder.
    final class Fixture {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-limits-\(UUID())")
        let engine: Engine
        let backend: EngineBackend

        init() throws {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            var options = EngineOptions()
            options.reactors = 1
            engine = try Engine(options: options)
            let state = try StateFolder(root: root.appendingPathComponent("state").path)
            backend = EngineBackend(
                engine: engine, state: state,
                session: SessionSettings(downloadDirectory: root.path, configDirectory: state.root),
                overrides: [:], logger: Logger(label: "test"))
        }

        /// Adds a one-piece torrent whose data is not there (it waits for peers that never come).
        func addTorrent() throws -> TorrentID {
            let info = "d6:lengthi1000e4:name5:x.bin12:piece lengthi16384e6:pieces20:"
            let bytes = Array("d4:info\(info)".utf8) + Array(repeating: 0, count: 20) + Array("ee".utf8)
            guard case .added(let identity) = try backend.add(bytes) else {
                throw RPCFailure("not added")
            }
            return TorrentID(value: identity.id)
        }

        deinit {
            engine.shutdown()
            try? FileManager.default.removeItem(at: root)
        }
    }

    static func changes(_ values: [SessionSettingKey: JSONValue]) throws -> SessionChanges {
        var changes = SessionChanges()
        for (key, value) in values { try changes.set(key, to: value) }
        return changes
    }

    @Test func sessionSetChangesTheEnginesGlobalLimits() async throws {
        let fixture = try Fixture()
        try await fixture.backend.updateSession(
            Self.changes([
                .speedLimitUp: .integer(100), .speedLimitUpEnabled: .bool(true),
                .speedLimitDown: .integer(300),
                .peerLimitGlobal: .integer(42),
            ]))
        // The download limit is not enabled: none.
        #expect(fixture.engine.globalUploadRateBytesPerSecond == 100_000)
        #expect(fixture.engine.globalDownloadRateBytesPerSecond == 0)
        #expect(fixture.engine.maximumConnections == 42)

        // The alternative speeds replace both while they are on.
        try await fixture.backend.updateSession(
            Self.changes([
                .altSpeedEnabled: .bool(true), .altSpeedUp: .integer(5), .altSpeedDown: .integer(7),
            ]))
        #expect(fixture.engine.globalUploadRateBytesPerSecond == 5_000)
        #expect(fixture.engine.globalDownloadRateBytesPerSecond == 7_000)
        try await fixture.backend.updateSession(Self.changes([.altSpeedEnabled: .bool(false)]))
        #expect(fixture.engine.globalUploadRateBytesPerSecond == 100_000)
    }

    @Test func torrentSetChangesTheTorrentsLimitsInTheEngine() async throws {
        let fixture = try Fixture()
        let id = try fixture.addTorrent()
        var changes = TorrentChanges()
        changes.uploadLimit = 50
        changes.uploadLimited = true
        changes.downloadLimit = 80
        changes.peerLimit = 7
        changes.seedRatioLimit = 1.5
        changes.seedRatioMode = .single
        try await fixture.backend.change(.only([.id(id.value)]), changes)
        // downloadLimited is off: the torrent has no download limit of its own.
        let limits = fixture.engine.snapshot(id)?.limits
        #expect(
            limits
                == TorrentLimits(
                    uploadRateBytesPerSecond: 50_000, downloadRateBytesPerSecond: 0, maximumPeers: 7,
                    seedRatioLimit: 1.5, seedTimeLimitSeconds: nil))

        // Following the session's ratio: a session-set of the ratio reaches the torrent.
        changes = TorrentChanges()
        changes.seedRatioMode = .global
        changes.uploadLimited = false
        try await fixture.backend.change(.only([.id(id.value)]), changes)
        #expect(fixture.engine.snapshot(id)?.limits.seedRatioLimit == nil)
        try await fixture.backend.updateSession(
            Self.changes([.seedRatioLimit: .real(3), .seedRatioLimited: .bool(true)]))
        #expect(fixture.engine.snapshot(id)?.limits.seedRatioLimit == 3)
        #expect(fixture.engine.snapshot(id)?.limits.uploadRateBytesPerSecond == 0)
    }

    /// Rates and minutes so large that their bytes or seconds overflow (a client's typo, or state saved
    /// by such a request) are held at the largest value, not a crash that every restart would repeat.
    @Test func hugeLimitsAreHeldAtTheLargestValue() async throws {
        let fixture = try Fixture()
        let id = try fixture.addTorrent()
        var changes = TorrentChanges()
        changes.uploadLimit = 9_300_000_000_000_000
        changes.uploadLimited = true
        changes.downloadLimit = -9_300_000_000_000_000
        changes.downloadLimited = true
        try await fixture.backend.change(.only([.id(id.value)]), changes)
        #expect(fixture.engine.snapshot(id)?.limits.uploadRateBytesPerSecond == .max)
        // Negative: no limit, as the engine reads any rate of 0 or less.
        #expect((fixture.engine.snapshot(id)?.limits.downloadRateBytesPerSecond ?? 1) <= 0)
        try await fixture.backend.updateSession(
            Self.changes([
                .speedLimitUp: .integer(9_300_000_000_000_000), .speedLimitUpEnabled: .bool(true),
                .queueStalledMinutes: .integer(.max), .queueStalledEnabled: .bool(true),
            ]))
        #expect(fixture.engine.globalUploadRateBytesPerSecond == .max)
        #expect(EngineBackend.stalledAfterSeconds(await fixture.backend.sessionSettings()) == .max)
        let idle = SeedIdleLimit(
            mode: .single, torrentMinutes: .max, sessionEnabled: false, sessionMinutes: 0)
        #expect(idle?.secondsLeft(startDate: 0, activityDate: 0, now: 100) == .max - 100)
    }

    /// torrent-add of a `filename` on this machine reads only a regular file of at most 16 MiB: a
    /// device that never ends or a huge file is refused with a reason, not read into memory.
    @Test func aTorrentFileMustBeASmallRegularFile() async throws {
        let fixture = try Fixture()
        let fifo = fixture.root.appendingPathComponent("writerless.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in ["/dev/zero", fixture.root.path, fifo] {
            await #expect(throws: RPCFailure.self) {
                _ = try await fixture.backend.addTorrent(TorrentAddRequest(source: .file(path)))
            }
        }
        let large = fixture.root.appendingPathComponent("large.torrent")
        FileManager.default.createFile(atPath: large.path, contents: nil)
        let handle = try FileHandle(forWritingTo: large)
        try handle.truncate(atOffset: UInt64(17 << 20))
        try handle.close()
        await #expect(throws: RPCFailure.self) {
            _ = try await fixture.backend.addTorrent(TorrentAddRequest(source: .file(large.path)))
        }
        let small = fixture.root.appendingPathComponent("small.torrent")
        let info = "d6:lengthi1000e4:name5:x.bin12:piece lengthi16384e6:pieces20:"
        let bytes = Array("d4:info\(info)".utf8) + Array(repeating: 0, count: 20) + Array("ee".utf8)
        FileManager.default.createFile(atPath: small.path, contents: Data(bytes))
        guard case .added = try await fixture.backend.addTorrent(TorrentAddRequest(source: .file(small.path)))
        else {
            Issue.record("a small .torrent file was not added")
            return
        }
    }

    /// honorsSessionLimits false exempts the torrent from the session's rates in the engine (its own
    /// still apply); true puts it back under them.
    @Test func aTorrentThatDoesNotHonourSessionLimitsIsExemptFromThem() async throws {
        let fixture = try Fixture()
        let id = try fixture.addTorrent()
        #expect(fixture.engine.snapshot(id)?.limits.honorsSharedRates == true)
        var changes = TorrentChanges()
        changes.honorsSessionLimits = false
        try await fixture.backend.change(.only([.id(id.value)]), changes)
        #expect(fixture.engine.snapshot(id)?.limits.honorsSharedRates == false)
        let listed = await fixture.backend.torrents(.all, fields: [.honorsSessionLimits]).torrents
        #expect(listed.first?.honorsSessionLimits == false)
        changes.honorsSessionLimits = true
        try await fixture.backend.change(.only([.id(id.value)]), changes)
        #expect(fixture.engine.snapshot(id)?.limits.honorsSharedRates == true)
    }

    /// What a reload lays over the session (`Daemon.reloadSettings` hands the file's session keys here).
    @Test func reloadedSettingsChangeTheEnginesLimits() throws {
        let fixture = try Fixture()
        var settings = try DaemonSettings(
            parsing: Array(
                #"{"speed-limit-down": 20, "speed-limit-down-enabled": true, "peer-limit-global": 9}"#.utf8))
        fixture.backend.layOperatorSettings(settings.sessionChanges)
        #expect(fixture.engine.globalDownloadRateBytesPerSecond == 20_000)
        #expect(fixture.engine.maximumConnections == 9)
        settings = try DaemonSettings(parsing: Array(#"{"alt-speed-enabled": true, "alt-speed-up": 1}"#.utf8))
        fixture.backend.layOperatorSettings(settings.sessionChanges)
        #expect(fixture.engine.globalUploadRateBytesPerSecond == 1_000)
    }
}

/// free-space and session-get on a file system that reports nearly 2⁶⁴ bytes (s3fs: 16 MiB blocks,
/// as many as fit in 64 bits) answer the largest integer instead of stopping the daemon.
@Suite struct DiskSpaceTests {
    @Test func sizesPastTheLargestIntegerAreHeldThere() {
        let unit: UInt = 16 << 20
        let blocks = UInt.max / unit
        let space = EngineBackend.diskSpace(available: blocks, blocks: blocks, unit: unit)
        #expect(space == DiskSpace(freeBytes: Int.max, totalBytes: Int.max))
        #expect(
            EngineBackend.diskSpace(available: 3, blocks: 5, unit: 4096)
                == DiskSpace(freeBytes: 12_288, totalBytes: 20_480))
    }
}
