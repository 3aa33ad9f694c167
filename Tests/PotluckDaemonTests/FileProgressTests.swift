import Metainfo
import Testing
import TorrentModel

@testable import PotluckDaemon

/// Per-file progress from the verified pieces: each file is credited with exactly the bytes of it that
/// lie in verified pieces, whether it starts, ends or sits inside a piece.
@Suite struct FileProgressTests {
    /// Files of 10, 30, 5 and 0 bytes over pieces of 16: pieces 0 [0,16), 1 [16,32), 2 [32,45).
    static let files = [
        FileEntry(path: ["t", "a"], length: 10, offset: 0),
        FileEntry(path: ["t", "b"], length: 30, offset: 10),
        FileEntry(path: ["t", "c"], length: 5, offset: 40),
        FileEntry(path: ["t", "empty"], length: 0, offset: 45),
    ]

    static func progress(verified pieces: [UInt32]) -> [Int64] {
        var set = PieceSet(pieceCount: 3)
        for piece in pieces { _ = set.insert(PieceIndex(piece)) }
        return files.map { DaemonTorrent.verifiedBytes(of: $0, in: set, pieceLength: 16) }
    }

    @Test func filesAreCreditedWithTheirBytesInVerifiedPieces() {
        #expect(Self.progress(verified: []) == [0, 0, 0, 0])
        #expect(Self.progress(verified: [0]) == [10, 6, 0, 0])
        #expect(Self.progress(verified: [1]) == [0, 16, 0, 0])
        #expect(Self.progress(verified: [2]) == [0, 8, 5, 0])
        #expect(Self.progress(verified: [0, 1, 2]) == [10, 30, 5, 0])
    }
}
