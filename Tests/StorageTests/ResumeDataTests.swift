import Glibc
import Metainfo
import Storage
import Testing
import TorrentModel

@Suite struct ResumeDataTests {
    /// Writes the crossing torrent's files as plain files and returns resume data claiming `verified`.
    func savedDownload(
        _ torrent: TestTorrent, in directory: TemporaryDirectory, verified: [Int]
    ) throws -> ResumeData {
        mkdir(directory.path + "/t", 0o755)
        mkdir(directory.path + "/t/dir", 0o755)
        writeFile(directory.path + "/t/a", Array(torrent.payload[0..<50_000]))
        writeFile(directory.path + "/t/b", Array(torrent.payload[50_000..<59_000]))
        writeFile(directory.path + "/t/empty", [])
        writeFile(directory.path + "/t/dir/c", Array(torrent.payload[59_000...]))
        var pieces = PieceSet(pieceCount: torrent.metainfo.pieceCount)
        for piece in verified { pieces.insert(PieceIndex(piece)) }
        let statuses = try ResumeData.currentFileStatuses(
            layout: torrent.layout, downloadDirectory: directory.path)
        #expect(statuses.allSatisfy { $0 != nil })
        return ResumeData(infoHash: torrent.metainfo.wireInfoHash, verified: pieces, files: statuses)
    }

    @Test func saveAndLoadRoundTrip() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let resume = try savedDownload(torrent, in: directory, verified: [0, 2, 3])
        let path = directory.path + "/t.resume"
        try resume.save(to: path)
        #expect(!exists(path + ".tmp"))
        let loaded = try ResumeData.load(
            from: path, infoHash: torrent.metainfo.wireInfoHash, layout: torrent.layout)
        #expect(loaded == resume)
        #expect(loaded.verified.pieces == [PieceIndex(0), PieceIndex(2), PieceIndex(3)])
        // Saving again replaces the file atomically.
        var more = loaded
        more.verified.insert(PieceIndex(1))
        try more.save(to: path)
        #expect(
            try ResumeData.load(from: path, infoHash: torrent.metainfo.wireInfoHash, layout: torrent.layout)
                == more)
    }

    @Test func everyTruncationIsRejected() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let bytes = try savedDownload(torrent, in: directory, verified: [1, 3]).encoded()
        for length in 0..<bytes.count {
            #expect(throws: StorageError.self, "a torn file of \(length) bytes") {
                try ResumeData(
                    decoding: Array(bytes[..<length]), infoHash: torrent.metainfo.wireInfoHash,
                    layout: torrent.layout)
            }
        }
    }

    @Test func everyFlippedByteIsRejected() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let bytes = try savedDownload(torrent, in: directory, verified: [1, 3]).encoded()
        for position in 0..<bytes.count {
            var damaged = bytes
            damaged[position] ^= 0x01
            #expect(throws: StorageError.self, "byte \(position) flipped") {
                try ResumeData(
                    decoding: damaged, infoHash: torrent.metainfo.wireInfoHash, layout: torrent.layout)
            }
        }
    }

    @Test func anotherTorrentsDataIsRejectedWithAClearReason() throws {
        let torrent = try crossingTorrent()
        let other = try crossingTorrent(format: .hybrid)
        let directory = TemporaryDirectory()
        let path = directory.path + "/t.resume"
        try savedDownload(torrent, in: directory, verified: [0]).save(to: path)
        do {
            _ = try ResumeData.load(from: path, infoHash: other.metainfo.wireInfoHash, layout: torrent.layout)
            Issue.record("data for another infohash was accepted")
        } catch {
            guard case .invalidResumeData(let detail) = error.reason else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(detail.contains("another torrent"))
            #expect(error.description.contains("rechecked"))
        }
        let shorter = try TestTorrent(files: [(["a"], [1, 2, 3])], pieceLength: 16 * 1024)
        #expect(throws: StorageError.self) {
            try ResumeData.load(from: path, infoHash: torrent.metainfo.wireInfoHash, layout: shorter.layout)
        }
        #expect(throws: StorageError.self) {
            try ResumeData.load(
                from: directory.path + "/absent", infoHash: torrent.metainfo.wireInfoHash,
                layout: torrent.layout)
        }
    }

    @Test func piecesOfChangedFilesAreNotTrusted() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let all = Array(0..<torrent.metainfo.pieceCount)
        let resume = try savedDownload(torrent, in: directory, verified: all)
        let unchanged = try ResumeData.currentFileStatuses(
            layout: torrent.layout, downloadDirectory: directory.path)
        #expect(resume.trustedPieces(current: unchanged, layout: torrent.layout).count == all.count)

        // `b` keeps its size but gets a new modification time: piece 1 (a, b, c) loses trust; piece 0
        // lies wholly in `a` and pieces 2 and 3 wholly in `dir/c`.
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 5), timespec(tv_sec: 1_000_000, tv_nsec: 5)]
        #expect(utimensat(AT_FDCWD, directory.path + "/t/b", &times, 0) == 0)
        let touched = try ResumeData.currentFileStatuses(
            layout: torrent.layout, downloadDirectory: directory.path)
        #expect(
            resume.trustedPieces(current: touched, layout: torrent.layout).pieces
                == [0, 2, 3].map { PieceIndex($0) })

        // Dated in the year 2300, past what nanoseconds since 1970 hold in 64 bits: read (it stopped
        // every start), and not trusted.
        var farFuture = [
            timespec(tv_sec: 10_413_792_000, tv_nsec: 0), timespec(tv_sec: 10_413_792_000, tv_nsec: 0),
        ]
        #expect(utimensat(AT_FDCWD, directory.path + "/t/b", &farFuture, 0) == 0)
        let dated = try ResumeData.currentFileStatuses(
            layout: torrent.layout, downloadDirectory: directory.path)
        #expect(dated[1]?.modificationTimeNanoseconds == .max)
        #expect(
            resume.trustedPieces(current: dated, layout: torrent.layout).pieces
                == [0, 2, 3].map { PieceIndex($0) })

        // `dir/c` deleted: only piece 0 remains.
        unlink(directory.path + "/t/dir/c")
        let deleted = try ResumeData.currentFileStatuses(
            layout: torrent.layout, downloadDirectory: directory.path)
        #expect(deleted[3] == nil)
        #expect(resume.trustedPieces(current: deleted, layout: torrent.layout).pieces == [PieceIndex(0)])
        // Synced first (as a save between flushes does), the files read the same; a symbolic link in a
        // file's place is refused either way.
        #expect(symlink(directory.path + "/t/a", directory.path + "/t/dir/c") == 0)
        let synced = try ResumeData.currentFileStatuses(
            layout: torrent.layout, downloadDirectory: directory.path, syncingData: true)
        #expect(synced == deleted && synced[0] != nil && synced[3] == nil)
    }
}
