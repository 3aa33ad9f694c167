import Buffers
import Glibc
import Metainfo
import Storage
import Testing
import TorrentModel

/// Files the user skipped: written only where pieces of wanted files straddle into them, never
/// preallocated, and their choice kept in resume data.
@Suite struct UnwantedFileStorageTests {
    /// 16 KiB pieces over `a` (wanted), `b` (skipped: piece 1 straddles its start, piece 4 its end),
    /// `c` (wanted), and two empty files, one of each kind.
    func straddlingTorrent() throws -> TestTorrent {
        try TestTorrent(
            files: [
                (["a"], patternBytes(count: 20_000, seed: 1)),
                (["b"], patternBytes(count: 60_000, seed: 2)),
                (["c"], patternBytes(count: 30_000, seed: 3)),
                (["empty-wanted"], []),
                (["empty-skipped"], []),
            ], pieceLength: 16 * 1024)
    }

    @Test func aSkippedFileHoldsOnlyTheBytesOfStraddlingPieces() throws {
        let torrent = try straddlingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        // Preallocation on: a skipped file must not be reserved whole anyway.
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(preallocate: true))
        store.setWantedFiles([true, false, true, true, false])
        try store.createEmptyFiles()
        // The pieces touching `a` or `c`: 0-1 and 4-6.
        let wanted = [0, 1, 4, 5, 6].map { PieceIndex($0) }
        try writeAll(torrent, store: store, pool: pool, reactor: reactor, pieces: wanted)

        #expect(exists(directory.path + "/t/empty-wanted"))
        #expect(!exists(directory.path + "/t/empty-skipped"))
        #expect(readFile(directory.path + "/t/a") == Array(torrent.payload[0..<20_000]))
        #expect(readFile(directory.path + "/t/c") == Array(torrent.payload[80_000..<110_000]))

        // `b` is bytes 20,000..<80,000: piece 1 ends at 32,768 and piece 4 starts at 65,536.
        let b = try #require(readFile(directory.path + "/t/b"))
        let head = 32_768 - 20_000
        let tail = 65_536 - 20_000
        #expect(b.count == 60_000)
        #expect(b[..<head] == torrent.payload[20_000..<32_768])
        #expect(b[tail...] == torrent.payload[65_536..<80_000])
        #expect(b[head..<tail].allSatisfy { $0 == 0 }, "bytes no wanted piece holds were written")
        var info = stat()
        #expect(stat(directory.path + "/t/b", &info) == 0)
        let straddlingBytes = head + (60_000 - tail)
        // Allocation is in file-system blocks: one partial block at each edge at most.
        #expect(
            Int(info.st_blocks) * 512 <= straddlingBytes + 2 * 4096,
            "a skipped file was allocated beyond its straddling bytes: \(info.st_blocks * 512)")
        #expect(stat(directory.path + "/t/c", &info) == 0)
        #expect(Int(info.st_blocks) * 512 >= 30_000, "a wanted file is still preallocated")
    }

    @Test func resumeDataKeepsTheFilePriorities() throws {
        let torrent = try straddlingTorrent()
        let directory = TemporaryDirectory()
        let path = directory.path + "/t.resume"
        let priorities: [FilePriority] = [.high, .skip, .low, .normal, .skip]
        let resume = ResumeData(
            infoHash: torrent.metainfo.wireInfoHash,
            verified: PieceSet(pieceCount: torrent.metainfo.pieceCount),
            files: Array(repeating: nil, count: torrent.layout.files.count), filePriorities: priorities)
        try resume.save(to: path)
        let loaded = try ResumeData.load(
            from: path, infoHash: torrent.metainfo.wireInfoHash, layout: torrent.layout)
        #expect(loaded.filePriorities == priorities)

        // Without a choice, none is remembered.
        var plain = resume
        plain.filePriorities = nil
        try plain.save(to: path)
        #expect(
            try ResumeData.load(from: path, infoHash: torrent.metainfo.wireInfoHash, layout: torrent.layout)
                .filePriorities == nil)
    }
}
