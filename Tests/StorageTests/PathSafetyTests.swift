import Buffers
import Glibc
import Metainfo
import Storage
import Testing
import TorrentModel
import URing

/// A symbolic link planted in the download folder must never lead the store outside it.
@Suite struct PathSafetyTests {
    @Test func symlinkedTorrentFolderIsRefused() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let downloads = directory.subdirectory("downloads")
        let outside = directory.subdirectory("outside")
        // The torrent's folder `t` is a link to a directory outside the download folder.
        #expect(symlink(outside, downloads + "/t") == 0)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 4)
        let store = try PieceStore(layout: torrent.layout, downloadDirectory: downloads, ring: reactor.ring)
        let events = try writeAll(
            torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(0)])
        guard case .failed(.writePiece(PieceIndex(0), let slot), let error) = events.first else {
            Issue.record("the write must fail, got \(events)")
            return
        }
        #expect(error.reason == .symlinkRefused)
        #expect(error.path == "t")
        #expect(pool.state(of: slot) == .leased)
        #expect(!exists(outside + "/a"), "nothing may be created through the link")
        #expect(!exists(outside + "/dir"))
    }

    @Test func symlinkedFileIsNeitherWrittenNorRead() throws {
        let content = patternBytes(count: 16 * 1024, seed: 40)
        let torrent = try TestTorrent(name: "movie", files: [(["movie"], content)], pieceLength: 16 * 1024)
        let directory = TemporaryDirectory()
        let downloads = directory.subdirectory("downloads")
        let secret = [UInt8]("do not touch".utf8)
        writeFile(directory.path + "/secret", secret)
        #expect(symlink(directory.path + "/secret", downloads + "/movie") == 0)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 2)
        let store = try PieceStore(layout: torrent.layout, downloadDirectory: downloads, ring: reactor.ring)
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        guard case .failed(_, let writeError) = events.first else {
            Issue.record("the write must fail, got \(events)")
            return
        }
        #expect(writeError.reason == .symlinkRefused)
        #expect(fileDigest(directory.path + "/secret") == digest(secret))

        var buffer = [UInt8](repeating: 0, count: 12)
        try buffer.withUnsafeMutableBytes { raw in
            store.readBlock(BlockRange(piece: PieceIndex(0), offset: 0, length: 12), into: raw, token: 9)
            try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        }
        guard case .failed(.readBlock(token: 9, _), let readError) = reactor.storeEvents.last else {
            Issue.record("the read must fail, got \(reactor.storeEvents)")
            return
        }
        #expect(readError.reason == .symlinkRefused)
        #expect(buffer != secret)
    }

    @Test func aDanglingSymlinkIsNotCreatedThrough() throws {
        // O_CREAT alone would follow the link and create its target outside the download folder.
        let torrent = try TestTorrent(
            name: "movie", files: [(["movie"], patternBytes(count: 100, seed: 42))], pieceLength: 16 * 1024)
        let directory = TemporaryDirectory()
        let downloads = directory.subdirectory("downloads")
        #expect(symlink(directory.path + "/created-outside", downloads + "/movie") == 0)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 1)
        let store = try PieceStore(layout: torrent.layout, downloadDirectory: downloads, ring: reactor.ring)
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        guard case .failed(_, let error) = events.first else {
            Issue.record("the write must fail, got \(events)")
            return
        }
        #expect(error.reason == .symlinkRefused)
        #expect(!exists(directory.path + "/created-outside"))
    }

    @Test func deepSymlinkedDirectoryIsRefused() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let downloads = directory.subdirectory("downloads")
        let outside = directory.subdirectory("outside")
        mkdir(downloads + "/t", 0o755)
        #expect(symlink(outside, downloads + "/t/dir") == 0)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(layout: torrent.layout, downloadDirectory: downloads, ring: reactor.ring)
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        // Pieces inside `a` and `b` are written; every piece touching `dir/c` is refused.
        for event in events {
            switch event {
            case .pieceWritten(let piece, _):
                #expect(piece == PieceIndex(0))
            case .failed(.writePiece(_, let slot), let error):
                #expect(error.reason == .symlinkRefused)
                #expect(error.path == "t/dir")
                pool.release(slot)
            default:
                Issue.record("unexpected \(event)")
            }
        }
        #expect(fileDigest(downloads + "/t/a") == digest(Array(torrent.payload[0..<50_000])))
        #expect(!exists(outside + "/c"))
    }

    @Test func aFifoInPlaceOfAFileIsRefusedWithoutBlocking() throws {
        let torrent = try TestTorrent(
            name: "f", files: [(["f"], patternBytes(count: 100, seed: 41))], pieceLength: 16 * 1024)
        let directory = TemporaryDirectory()
        #expect(mkfifo(directory.path + "/f", 0o644) == 0)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 1)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        guard case .failed(_, let error) = events.first else {
            Issue.record("the write must fail, got \(events)")
            return
        }
        #expect(error.reason == .notARegularFile)
    }

    @Test func errorsReadLikeSentences() {
        let full = StorageError(.write, path: "Show/e01.mkv", reason: .system(.noSpace))
        #expect(full.description == "cannot write \"Show/e01.mkv\": the disk is full (ENOSPC)")
        let link = StorageError(.open, path: "t", reason: .symlinkRefused)
        #expect(link.description.contains("symbolic link"))
        #expect(StorageError(.read, path: "x", reason: .system(.ioError)).description.contains("EIO"))
    }
}
