import Buffers
import Foundation
import Glibc
import Testing
import TorrentModel
import URing

@testable import Storage

/// A file the store writes, replaced behind its back: writes on the open descriptor would land in a file
/// no path reaches, so the store notices, and refuses to write through what replaced it.
@Suite struct ReplacedFileTests {
    /// A store of the crossing torrent with pieces 0 and 1 written: `a`, `b` and `dir/c` open.
    static func twoPiecesWritten() throws -> (
        TestTorrent, TemporaryDirectory, Reactor, BufferPool, PieceStore
    ) {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        try writeAll(
            torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(0), PieceIndex(1)])
        return (torrent, directory, reactor, pool, store)
    }

    @Test func aFileReplacedWhileOpenIsFoundAndFailsTheFlush() throws {
        // Pieces 0 and 1 open `a`, `b` and `dir/c`.
        let (torrent, directory, reactor, pool, store) = try Self.twoPiecesWritten()
        #expect(store.findReplacedFile() == nil)

        #expect(unlink(directory.path + "/t/b") == 0 && mkdir(directory.path + "/t/b", 0o755) == 0)
        let replaced = StorageError(.write, path: "t/b", reason: .replacedWhileWriting(now: "a directory"))
        // Nothing was written since the last look, so it does not look again; the flush does.
        #expect(store.findReplacedFile() == nil)
        var before = reactor.storeEvents.count
        store.flush()
        try reactor.runStore(store, events: before + 1)
        #expect(reactor.storeEvents.last == .failed(.flush, replaced))
        // A write to it since is noticed by the next look.
        try writeAll(torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(1)])
        #expect(store.findReplacedFile() == replaced)
        before = reactor.storeEvents.count
        store.flush()
        try reactor.runStore(store, events: before + 1)
        #expect(reactor.storeEvents.last == .failed(.flush, replaced))
        #expect(replaced.description.contains("cannot write \"t/b\": it was replaced or removed"))
    }

    /// Two files replaced at once (a folder swapped in): the store names both, so the engine forgets
    /// the pieces of both before it saves resume data again, not only the first one's.
    @Test func everyReplacedFileIsNamed() throws {
        let (torrent, directory, _, _, store) = try Self.twoPiecesWritten()
        #expect(store.replacedFiles().isEmpty)
        for name in ["a", "b"] {
            let path = directory.path + "/t/" + name
            #expect(rename(path, path + ".old") == 0)
            #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        }
        let names = store.replacedFiles().map { torrent.layout.files[$0].path.joined(separator: "/") }
        #expect(names == ["t/a", "t/b"], "\(names)")
    }

    /// A file closed (its descriptor given back) before its writes were synced, then removed or
    /// replaced: the flush does not create it anew and vouch for the writes it lost, it fails.
    @Test(arguments: [false, true])
    func aFileClosedUnsyncedThenRemovedFailsTheFlush(replacedByAnotherFile: Bool) throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        try writeAll(
            torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(0), PieceIndex(1)])
        store.closeIdleFiles()

        let path = directory.path + "/t/b"
        // Moved aside rather than unlinked when replaced, so the new file cannot reuse its inode.
        #expect((replacedByAnotherFile ? rename(path, path + ".old") : unlink(path)) == 0)
        if replacedByAnotherFile { writeFile(path, Array("someone else's".utf8)) }
        let before = reactor.storeEvents.count
        store.flush()
        try reactor.runStore(store, events: before + 1)
        let now = replacedByAnotherFile ? "another file" : "missing"
        #expect(
            reactor.storeEvents.last
                == .failed(.flush, StorageError(.write, path: "t/b", reason: .replacedWhileWriting(now: now)))
        )
        #expect(readFile(path) == (replacedByAnotherFile ? Array("someone else's".utf8) : nil))
    }

    @Test func aFileReplacedByASymbolicLinkIsNeverWrittenThrough() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let outside = TemporaryDirectory()
        let target = outside.path + "/target"
        let original: [UInt8] = Array("outside the download folder".utf8)
        writeFile(target, original)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        try writeAll(torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(1)])

        let path = directory.path + "/t/dir/c"
        #expect(unlink(path) == 0 && symlink(target, path) == 0)
        #expect(
            store.findReplacedFile()
                == StorageError(
                    .write, path: "t/dir/c", reason: .replacedWhileWriting(now: "a symbolic link")))
        // The open descriptor still names the file that was unlinked: the write lands there, not in the
        // link's target.
        try writeAll(torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(2)])
        #expect(readFile(target) == original)
        // Opened again, the path is refused.
        store.closeIdleFiles()
        let events = try writeAll(
            torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(2)])
        guard case .failed(_, let error) = events.first else {
            Issue.record("the write through a symbolic link did not fail: \(events)")
            return
        }
        #expect(error.reason == .symlinkRefused && error.path == "t/dir/c")
        #expect(readFile(target) == original)
    }
}
