import Testing
import TorrentModel

@Suite struct PieceGeometryTests {
    @Test func lastPieceIsTheRemainder() {
        let geometry = PieceGeometry(totalLength: 100_000, pieceLength: 32768)
        #expect(geometry.pieceCount == 4)
        #expect(geometry.length(of: PieceIndex(0)) == 32768)
        #expect(geometry.length(of: PieceIndex(3)) == 100_000 - 3 * 32768)
        #expect(geometry.blockCount(of: PieceIndex(3)) == 1)
        #expect(geometry.block(0, of: PieceIndex(3)).length == UInt32(100_000 - 3 * 32768))
    }

    @Test func exactMultipleHasNoShortPiece() {
        let geometry = PieceGeometry(totalLength: 4 * 65536, pieceLength: 65536)
        #expect(geometry.pieceCount == 4)
        #expect(geometry.length(of: PieceIndex(3)) == 65536)
        #expect(geometry.blockCount(of: PieceIndex(3)) == 4)
    }

    @Test func outsideInputIsChecked() {
        let geometry = PieceGeometry(totalLength: 100_000, pieceLength: 32768)
        #expect(geometry.checkedPiece(3) != nil)
        #expect(geometry.checkedPiece(4) == nil)
        #expect(geometry.checkedPiece(UInt32.max) == nil)
        #expect(!geometry.isValid(BlockRange(piece: PieceIndex(3), offset: 0, length: 16384)))
        #expect(!geometry.isValid(BlockRange(piece: PieceIndex(0), offset: 32767, length: 2)))
        #expect(!geometry.isValid(BlockRange(piece: PieceIndex(0), offset: 0, length: 0)))
        #expect(geometry.isValid(BlockRange(piece: PieceIndex(0), offset: 16384, length: 16384)))
        #expect(geometry.isStandardBlock(BlockRange(piece: PieceIndex(0), offset: 16384, length: 16384)))
        #expect(!geometry.isStandardBlock(BlockRange(piece: PieceIndex(0), offset: 1, length: 16384)))
    }

    @Test func emptyTorrentHasNoPieces() {
        #expect(PieceGeometry(totalLength: 0, pieceLength: 16384).pieceCount == 0)
    }
}
