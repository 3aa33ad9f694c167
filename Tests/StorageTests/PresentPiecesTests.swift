import Glibc
import Metainfo
import Testing
import TorrentModel

@testable import Storage

/// Which pieces a start checks beyond what resume data vouches for: those whose bytes could be on disk.
@Suite struct PresentPiecesTests {
    static let pieceLength = 16 * 1024

    /// Two files of five and three pieces; the data folder starts empty.
    static func torrent() throws -> TestTorrent {
        try TestTorrent(
            files: [
                (["a.bin"], patternBytes(count: 5 * pieceLength, seed: 1)),
                (["b.bin"], patternBytes(count: 3 * pieceLength, seed: 2)),
            ], pieceLength: pieceLength)
    }

    @Test func onlyPiecesWithDataInFilesLongEnoughAreCandidates() throws {
        let torrent = try Self.torrent()
        let directory = TemporaryDirectory()
        let folder = directory.path + "/t"
        #expect(mkdir(folder, 0o755) == 0)
        // a.bin: full length but sparse, with data written in pieces 1 and 3 only.
        let a = folder + "/a.bin"
        writeFile(a, Array(torrent.payload[Self.pieceLength..<(2 * Self.pieceLength)]), at: Self.pieceLength)
        writeFile(
            a, Array(torrent.payload[(3 * Self.pieceLength)..<(4 * Self.pieceLength)]),
            at: 3 * Self.pieceLength,
            truncate: false)
        #expect(truncate(a, off_t(5 * Self.pieceLength)) == 0)
        // b.bin: only its first piece and a half exist.
        writeFile(
            folder + "/b.bin", Array(torrent.payload[(5 * Self.pieceLength)..<(6 * Self.pieceLength + 100)]))

        var trusted = PieceSet(pieceCount: torrent.layout.geometry.pieceCount)
        let none = PresentPieces.find(
            layout: torrent.layout, downloadDirectory: directory.path, excluding: trusted)
        // Holes (pieces 0, 2, 4) are skipped where the file system reports them; b.bin's piece 6 is
        // cut short and piece 7 is beyond its end.
        #expect(Set(none.map(\.int)).isSuperset(of: [1, 3, 5]))
        #expect(!none.contains(PieceIndex(6)) && !none.contains(PieceIndex(7)))

        trusted.insert(PieceIndex(3))
        let rest = PresentPieces.find(
            layout: torrent.layout, downloadDirectory: directory.path, excluding: trusted)
        #expect(!rest.contains(PieceIndex(3)))
        #expect(rest.contains(PieceIndex(1)) && rest.contains(PieceIndex(5)))
    }

    @Test func missingFolderOrFilesHoldNoCandidates() throws {
        let torrent = try Self.torrent()
        let directory = TemporaryDirectory()
        let empty = PieceSet(pieceCount: torrent.layout.geometry.pieceCount)
        #expect(
            PresentPieces.find(layout: torrent.layout, downloadDirectory: directory.path, excluding: empty)
                .isEmpty)
        #expect(
            PresentPieces.find(
                layout: torrent.layout, downloadDirectory: directory.path + "/absent", excluding: empty
            )
            .isEmpty)
    }
}
