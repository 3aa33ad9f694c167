import Foundation
import Glibc
import Hashing
import Locking
import Metainfo
import Storage
import Testing
import TorrentModel
import URing

@testable import Engine

/// `Engine.move` and a move interrupted by a crash, on real files: on one file system (renames) and
/// across two (/tmp and the /dev/shm tmpfs: copies through the ring).
@Suite struct MoveTests {
    static let files: [(path: [String], size: Int)] = [
        (["a.bin"], 300_000), (["sub", "b.bin"], 70_000), (["sub", "deeper", "c.bin"], 1_500_000),
    ]

    /// A multi-file torrent "moving" of pseudo-random files written under `directory`.
    static func makeTorrent(in directory: URL) throws -> Metainfo {
        let pieceLength = 32 * 1024
        var generator = SeededRandom(seed: 77)
        var payload: [UInt8] = []
        for file in files {
            let bytes = (0..<file.size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let url = directory.appendingPathComponent((["moving"] + file.path).joined(separator: "/"))
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
            payload += bytes
        }
        var builder = TorrentBuilder(
            name: "moving",
            files: files.map { TorrentBuilder.File(path: $0.path, length: Int64($0.size)) },
            pieceLength: pieceLength, format: .v1)
        builder.pieceHashesV1 = stride(from: 0, to: payload.count, by: pieceLength).map {
            SHA1.hash(payload[$0..<min($0 + pieceLength, payload.count)])
        }
        return try Metainfo(bytes: builder.build())
    }

    static func folder(_ label: String, under base: String = NSTemporaryDirectory()) throws -> URL {
        let url = URL(fileURLWithPath: base).appendingPathComponent(
            "potluck-move-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Each file's bytes under `directory`, nil where one is missing.
    static func contents(in directory: URL) -> [Data?] {
        files.map {
            FileManager.default.contents(atPath: directory.path + "/moving/" + $0.path.joined(separator: "/"))
        }
    }

    static func seedingEngine(
        _ metainfo: Metainfo, in directory: URL,
        onMoved: @escaping @Sendable (TorrentID, String) -> Void = { _, _ in }
    ) throws -> (Engine, TorrentID) {
        var engineOptions = EngineOptions()
        engineOptions.reactors = 1
        engineOptions.listenAddress = SocketAddress("127.0.0.1:0")
        engineOptions.onMoved = onMoved
        let engine = try Engine(options: engineOptions)
        var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
        options.seedWhenComplete = true
        let id = try engine.add(metainfo, options: options)
        return (engine, id)
    }

    /// Moves the torrent to `target` and waits for the move to fail: the reason it gives, or nil (an
    /// issue recorded) when it did not fail.
    static func failedMove(_ engine: Engine, _ id: TorrentID, to target: URL) throws -> String? {
        try engine.move(id, to: target.path)
        #expect(
            EngineTests.eventually {
                if case .failed = engine.snapshot(id)?.activity { return true }
                return false
            })
        guard case .failed(let reason) = engine.snapshot(id)?.activity else { return nil }
        return reason
    }

    @Test(arguments: [false, true])
    func aSeedMovesItsFilesAndSeedsOnFromTheNewFolder(acrossFileSystems: Bool) throws {
        let source = try Self.folder("source")
        let target = try Self.folder("target", under: acrossFileSystems ? "/dev/shm" : NSTemporaryDirectory())
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let metainfo = try Self.makeTorrent(in: source)
        let before = Self.contents(in: source)
        let firstModified =
            try FileManager.default.attributesOfItem(atPath: source.path + "/moving/a.bin")[
                .modificationDate] as? Date
        let moved = MovedTargets()
        let (engine, id) = try Self.seedingEngine(metainfo, in: source) { _, target in
            moved.list.withLock { $0.append(target) }
        }
        defer { engine.shutdown() }
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })

        let destination = target.appendingPathComponent("completed").path
        try engine.move(id, to: destination)
        #expect(
            EngineTests.eventually {
                engine.snapshot(id)?.activity == .seeding
                    && engine.snapshot(id)?.downloadDirectory == destination
            }, "\(String(describing: engine.snapshot(id)?.activity))")
        #expect(moved.list.withLock { $0 } == [destination])
        #expect(Self.contents(in: URL(fileURLWithPath: destination)) == before)
        // Nothing of the torrent's is left behind: not its files, folders or resume data.
        #expect(try FileManager.default.contentsOfDirectory(atPath: source.path) == [])
        let resume = metainfo.wireInfoHash.hex + ".potluck-resume"
        #expect(FileManager.default.fileExists(atPath: destination + "/." + resume))
        // A copy keeps the modification time that resume data vouches for files by.
        let movedModified =
            try FileManager.default.attributesOfItem(atPath: destination + "/moving/a.bin")[
                .modificationDate] as? Date
        #expect(firstModified == movedModified)
        // It seeds on from its resume data, without checking the files again.
        #expect(engine.snapshot(id)?.status?.checkedBytes == 0)
    }

    /// A download into an incomplete folder that seeds once complete: its files go to the completed
    /// folder as its last piece is verified, and it seeds on from there.
    @Test func aCompletedDownloadLeavesTheIncompleteFolderAndSeedsFromTheCompletedOne() throws {
        let seedFolder = try Self.folder("origin")
        let partial = try Self.folder("partial")
        let completed = try Self.folder("completed", under: "/dev/shm")
        defer {
            for folder in [seedFolder, partial, completed] { try? FileManager.default.removeItem(at: folder) }
        }
        let metainfo = try Self.makeTorrent(in: seedFolder)
        let (seeder, _) = try Self.seedingEngine(metainfo, in: seedFolder)
        defer { seeder.shutdown() }
        let port = try #require(seeder.boundAddress).port

        let moved = MovedTargets()
        var engineOptions = EngineOptions()
        engineOptions.reactors = 1
        engineOptions.onMoved = { _, target in moved.list.withLock { $0.append(target) } }
        let leecher = try Engine(options: engineOptions)
        defer { leecher.shutdown() }
        var options = DownloadOptions(
            downloadDirectory: partial.path, peers: [SocketAddress("127.0.0.1:\(port)")!])
        options.completedDirectory = completed.path
        options.seedWhenComplete = true
        let id = try leecher.add(metainfo, options: options)
        #expect(
            EngineTests.eventually {
                leecher.snapshot(id)?.activity == .seeding
                    && leecher.snapshot(id)?.downloadDirectory == completed.path
            }, "\(String(describing: leecher.snapshot(id)?.activity))")
        #expect(Self.contents(in: completed) == Self.contents(in: seedFolder))
        #expect(try FileManager.default.contentsOfDirectory(atPath: partial.path) == [])
        #expect(moved.list.withLock { $0 } == [completed.path])
    }

    @Test func aPausedTorrentMovesAndStaysPaused() throws {
        let source = try Self.folder("paused-source")
        let target = try Self.folder("paused-target")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let metainfo = try Self.makeTorrent(in: source)
        let (engine, id) = try Self.seedingEngine(metainfo, in: source)
        defer { engine.shutdown() }
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })
        try engine.pause(id)
        #expect(EngineTests.eventually { engine.snapshot(id)?.isLive == false })
        try engine.move(id, to: target.path)
        #expect(EngineTests.eventually { engine.snapshot(id)?.downloadDirectory == target.path })
        #expect(engine.snapshot(id)?.activity == .paused)
        #expect(Self.contents(in: target).allSatisfy { $0 != nil })
        try engine.resume(id)
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })
    }

    /// The third file cannot go (a file of the same name as its folder is in the way): the two moved
    /// go back, and the torrent stops with the reason and seeds again where it was when resumed.
    @Test func aFailedMoveLeavesEveryFileWhereItWas() throws {
        let source = try Self.folder("failing-source")
        let target = try Self.folder("failing-target")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let metainfo = try Self.makeTorrent(in: source)
        let before = Self.contents(in: source)
        try FileManager.default.createDirectory(
            at: target.appendingPathComponent("moving/sub"), withIntermediateDirectories: true)
        try Data("in the way".utf8).write(to: target.appendingPathComponent("moving/sub/deeper"))
        let (engine, id) = try Self.seedingEngine(metainfo, in: source)
        defer { engine.shutdown() }
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })

        guard let reason = try Self.failedMove(engine, id, to: target) else { return }
        #expect(reason.contains("moving/sub/deeper"), "\(reason)")
        #expect(Self.contents(in: source) == before)
        #expect(!FileManager.default.fileExists(atPath: target.path + "/moving/a.bin"))
        #expect(engine.snapshot(id)?.downloadDirectory == source.path)
        try engine.resume(id)
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })
    }

    /// A torrent in `source` whose move to `target` a crash cut after its first file: the journal kept,
    /// `moving/a.bin` in the target. Returns the torrent, its files' bytes and its resume data's path.
    static func cutAfterTheFirstFile(
        from source: URL, to target: URL
    ) throws -> (Metainfo, [Data?], String) {
        let metainfo = try makeTorrent(in: source)
        let before = contents(in: source)
        let resumePath = DownloadOptions(downloadDirectory: source.path, peers: [])
            .resumeDataPath(infoHash: metainfo.wireInfoHash)
        try MoveJournal(source: source.path, target: target.path)
            .save(to: MoveJournal.path(forResumeData: resumePath))
        try FileManager.default.createDirectory(
            at: target.appendingPathComponent("moving"), withIntermediateDirectories: true)
        try FileManager.default.moveItem(
            at: source.appendingPathComponent("moving/a.bin"),
            to: target.appendingPathComponent("moving/a.bin"))
        return (metainfo, before, resumePath)
    }

    /// A crash in the middle of a move: one file already moved, one half copied. The next start finds
    /// the journal, finishes the move, and seeds from the new folder.
    @Test func aMoveCutShortIsFinishedAtTheNextStart() throws {
        let source = try Self.folder("crash-source")
        let target = try Self.folder("crash-target")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let (metainfo, before, resumePath) = try Self.cutAfterTheFirstFile(from: source, to: target)
        try FileManager.default.createDirectory(
            at: target.appendingPathComponent("moving/sub/deeper"), withIntermediateDirectories: true)
        try Data(repeating: 1, count: 1000).write(
            to: target.appendingPathComponent("moving/sub/deeper/c.bin.potluck-part"))

        let (engine, id) = try Self.seedingEngine(metainfo, in: source)
        defer { engine.shutdown() }
        #expect(
            EngineTests.eventually {
                engine.snapshot(id)?.activity == .seeding
                    && engine.snapshot(id)?.downloadDirectory == target.path
            }, "\(String(describing: engine.snapshot(id)?.activity))")
        #expect(Self.contents(in: target) == before)
        #expect(
            !FileManager.default.fileExists(atPath: target.path + "/moving/sub/deeper/c.bin.potluck-part"))
        #expect(!FileManager.default.fileExists(atPath: MoveJournal.path(forResumeData: resumePath)))
    }

    /// A move cut short after its first file, finished at the next start, fails on a file of the
    /// user's: the file the cut run moved comes back with the others, where it used to stay in the
    /// target, the journal gone and the torrent pointing at the source without it.
    @Test func aResumedMoveThatFailsBringsBackWhatTheCutRunMoved() throws {
        let source = try Self.folder("cut-failed-source")
        let target = try Self.folder("cut-failed-target")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let (metainfo, before, _) = try Self.cutAfterTheFirstFile(from: source, to: target)
        try FileManager.default.createDirectory(
            at: target.appendingPathComponent("moving/sub"), withIntermediateDirectories: true)
        let theirs = target.appendingPathComponent("moving/sub/b.bin")
        try Data("the user's own file".utf8).write(to: theirs)

        let (engine, id) = try Self.seedingEngine(metainfo, in: source)
        defer { engine.shutdown() }
        #expect(
            EngineTests.eventually {
                if case .failed = engine.snapshot(id)?.activity { return true }
                return false
            }, "\(String(describing: engine.snapshot(id)?.activity))")
        #expect(Self.contents(in: source) == before)
        #expect(!FileManager.default.fileExists(atPath: target.path + "/moving/a.bin"))
        #expect(FileManager.default.contents(atPath: theirs.path) == Data("the user's own file".utf8))
    }

    /// A file of the user's at the destination, of the same relative path as one of the torrent's: the
    /// move fails on it and leaves it as it was, and the torrent's files stay whole where they were.
    @Test func aFileAtTheDestinationIsNeverReplaced() throws {
        let source = try Self.folder("occupied-source")
        let target = try Self.folder("occupied-target")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let metainfo = try Self.makeTorrent(in: source)
        let before = Self.contents(in: source)
        let theirs = target.appendingPathComponent("moving/sub/b.bin")
        try FileManager.default.createDirectory(
            at: theirs.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("the user's own file".utf8).write(to: theirs)
        let (engine, id) = try Self.seedingEngine(metainfo, in: source)
        defer { engine.shutdown() }
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })

        guard let reason = try Self.failedMove(engine, id, to: target) else { return }
        #expect(
            reason.contains("moving/sub/b.bin") && reason.contains("already at the destination"), "\(reason)")
        #expect(FileManager.default.contents(atPath: theirs.path) == Data("the user's own file".utf8))
        #expect(Self.contents(in: source) == before)
        #expect(!FileManager.default.fileExists(atPath: target.path + "/moving/a.bin"))
        let resumePath = DownloadOptions(downloadDirectory: source.path, peers: [])
            .resumeDataPath(infoHash: metainfo.wireInfoHash)
        #expect(!FileManager.default.fileExists(atPath: MoveJournal.path(forResumeData: resumePath)))
    }

    /// A crash between a copy's rename into place and the removal of its source leaves the file in
    /// both folders (on two file systems): the next start takes the copy, which has the source's size
    /// and time, and removes the source.
    @Test func aCopyWhoseSourceWasNotYetRemovedIsTakenAtTheNextStart() throws {
        let source = try Self.folder("copied-source")
        let target = try Self.folder("copied-target", under: "/dev/shm")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: target)
        }
        let metainfo = try Self.makeTorrent(in: source)
        let before = Self.contents(in: source)
        let resumePath = DownloadOptions(downloadDirectory: source.path, peers: [])
            .resumeDataPath(infoHash: metainfo.wireInfoHash)
        try MoveJournal(source: source.path, target: target.path)
            .save(to: MoveJournal.path(forResumeData: resumePath))
        let original = source.path + "/moving/sub/b.bin"
        let copy = target.path + "/moving/sub/b.bin"
        try FileManager.default.createDirectory(
            atPath: target.path + "/moving/sub", withIntermediateDirectories: true)
        try #require(FileManager.default.contents(atPath: original)).write(to: URL(fileURLWithPath: copy))
        var info = stat()
        #expect(stat(original, &info) == 0)
        var times = [info.st_atim, info.st_mtim]
        #expect(utimensat(AT_FDCWD, copy, &times, 0) == 0)

        let (engine, id) = try Self.seedingEngine(metainfo, in: source)
        defer { engine.shutdown() }
        #expect(
            EngineTests.eventually {
                engine.snapshot(id)?.activity == .seeding
                    && engine.snapshot(id)?.downloadDirectory == target.path
            }, "\(String(describing: engine.snapshot(id)?.activity))")
        #expect(Self.contents(in: target) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: source.path) == [])
    }

    /// A journal naming two other folders was not written by a move of this torrent (someone put it
    /// there): it is ignored, nothing moves, and the torrent seeds from its own folder.
    @Test func aJournalNamingOtherFoldersIsIgnored() throws {
        let folder = try Self.folder("planted")
        let elsewhere = try Self.folder("planted-elsewhere")
        let destination = try Self.folder("planted-destination")
        defer {
            for url in [folder, elsewhere, destination] { try? FileManager.default.removeItem(at: url) }
        }
        let metainfo = try Self.makeTorrent(in: folder)
        _ = try Self.makeTorrent(in: elsewhere)
        let elsewhereBefore = Self.contents(in: elsewhere)
        let resumePath = DownloadOptions(downloadDirectory: folder.path, peers: [])
            .resumeDataPath(infoHash: metainfo.wireInfoHash)
        try MoveJournal(source: elsewhere.path, target: destination.path)
            .save(to: MoveJournal.path(forResumeData: resumePath))

        let (engine, id) = try Self.seedingEngine(metainfo, in: folder)
        defer { engine.shutdown() }
        #expect(EngineTests.eventually { engine.snapshot(id)?.activity == .seeding })
        #expect(engine.snapshot(id)?.downloadDirectory == folder.path)
        #expect(Self.contents(in: elsewhere) == elsewhereBefore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.path) == [])
    }
}

/// Where `onMoved` said the files went, in order.
private final class MovedTargets: Sendable {
    let list = Lock<[String]>([])
}
