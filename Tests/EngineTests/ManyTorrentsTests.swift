import Foundation
import Glibc
import Metainfo
import Testing

@testable import Engine

/// What lets one process hold thousands of torrents: checks take turns on their reactor, a torrent at
/// rest holds no descriptor and no piece memory, resume data that already says it all is not written
/// again, and the engine's summary stays right as torrents come, fail and go.
@Suite struct ManyTorrentsTests {
    static func seedingOptions(_ directory: URL) -> DownloadOptions {
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        return options
    }

    /// Runs `reactor` until `condition` holds (at most 60 s).
    static func run(_ reactor: Reactor, until condition: @escaping () -> Bool) throws {
        let deadline = Date().addingTimeInterval(60)
        try reactor.run(shouldStop: { false }, until: { condition() || Date() > deadline })
        #expect(condition(), "timed out")
    }

    @Test func checksTakeTurnsAndTorrentsAtRestHoldNoDescriptors() throws {
        let directory = try EngineTests.temporaryDirectory("turns")
        defer { try? FileManager.default.removeItem(at: directory) }
        let count = Reactor.concurrentChecks * 3
        let sessions = try (0..<count).map { index in
            DownloadSession(
                metainfo: try EngineTests.makeTorrent(
                    named: "t\(index).bin", size: 20_000 + 700 * index, seed: UInt8(index), in: directory),
                options: Self.seedingOptions(directory))
        }
        let reactor = try Reactor()
        for session in sessions { reactor.host(session) }
        try Self.run(reactor) {
            sessions.allSatisfy { $0.lifecycle.stage == .seeding && $0.resumeSavesInFlight == 0 }
        }
        #expect(reactor.peakChecksRunning > 1, "checks run side by side")
        #expect(reactor.peakChecksRunning <= Reactor.concurrentChecks)
        for session in sessions {
            #expect(session.verified.isComplete)
            #expect(session.store.holdsDescriptors == false, "\(session.metainfo.name) holds a descriptor")
            #expect(session.pieceBufferStorage == nil, "a seed keeps no piece memory after its check")
            #expect(session.resumeSavedPieceCount == session.metainfo.pieceCount)
        }
        for session in sessions { session.stop() }
        try Self.run(reactor) { sessions.allSatisfy { $0.outcome != nil } }
        #expect(sessions.allSatisfy { $0.outcome.map { (try? $0.get()) == .interrupted } == true })
    }

    @Test func resumeDataThatSaysItAllIsNotWrittenAgain() throws {
        let directory = try EngineTests.temporaryDirectory("resume")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "r.bin", size: 90_000, seed: 3, in: directory)
        let options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        let checked = DownloadSession(metainfo: metainfo, options: options)
        #expect(try checked.run(shouldStop: { false }, status: { _ in }) == .completed)
        var before = stat()
        #expect(stat(checked.resumePath, &before) == 0, "the check's findings are saved")

        let lines = LogLines()
        let restarted = DownloadSession(metainfo: metainfo, options: options) { lines.append($0) }
        #expect(try restarted.run(shouldStop: { false }, status: { _ in }) == .completed)
        var after = stat()
        #expect(stat(restarted.resumePath, &after) == 0)
        #expect(lines.text.contains("\(metainfo.pieceCount) of \(metainfo.pieceCount) pieces trusted"))
        // Saving replaces the file (a new inode): the same inode and time mean it was left alone.
        #expect(after.st_ino == before.st_ino)
        #expect(
            after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
    }

    @Test func theSummaryFollowsTorrentsThatComeFailAndGo() throws {
        let directory = try EngineTests.temporaryDirectory("summary")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try Engine(options: EngineOptions())
        defer { engine.shutdown() }
        var ids: [TorrentID] = []
        for index in 0..<6 {
            let metainfo = try EngineTests.makeTorrent(
                named: "s\(index).bin", size: 30_000, seed: UInt8(40 + index), in: directory)
            ids.append(try engine.add(metainfo, options: Self.seedingOptions(directory)))
        }
        #expect(EngineTests.eventually { engine.snapshots().allSatisfy { $0.activity == .seeding } })
        var summary = engine.summary()
        #expect(summary.torrents == 6 && summary.live == 6 && summary.failed == 0)
        #expect(summary.firstFailure == nil && !summary.exhaustedProcessResources)

        // A download folder that is a file: the torrent fails, and the summary names it.
        let blocked = directory.appendingPathComponent("not-a-folder")
        try Data([1]).write(to: blocked)
        let doomed = try EngineTests.makeTorrent(named: "doomed.bin", size: 10_000, seed: 99, in: directory)
        let failing = try engine.add(
            doomed, options: DownloadOptions(downloadDirectory: blocked.path + "/inside", peers: []))
        #expect(EngineTests.eventually { engine.snapshot(failing)?.isLive == false })
        summary = engine.summary()
        #expect(summary.torrents == 7 && summary.live == 6 && summary.failed == 1)
        #expect(summary.firstFailure?.hasPrefix("doomed.bin: ") == true, "\(summary.firstFailure ?? "none")")

        try engine.pause(ids[0])
        try engine.remove(ids[1])
        try engine.remove(failing)
        #expect(EngineTests.eventually { engine.summary().torrents == 5 && engine.summary().live == 4 })
        summary = engine.summary()
        #expect(summary.failed == 0 && summary.firstFailure == nil)
        let snapshots = engine.snapshots()
        #expect(summary.connectedPeers == snapshots.reduce(0) { $0 + ($1.status?.connectedPeers ?? 0) })
        #expect(
            summary.uploadedPayloadBytes
                == snapshots.reduce(0) { $0 + ($1.status?.uploadedPayloadBytes ?? 0) })
    }
}

/// Log lines gathered from a session (on its reactor's thread, read after it ran).
final class LogLines: @unchecked Sendable {
    private var lines: [String] = []
    func append(_ line: String) { lines.append(line) }
    var text: String { lines.joined(separator: "\n") }
}
