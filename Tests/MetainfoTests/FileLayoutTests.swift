import Testing
import TorrentModel

@testable import Metainfo

@Suite struct FileLayoutTests {
    /// Files of 5, 0, 20 (padding), 7 bytes in 16-byte pieces... scaled: PieceGeometry needs no minimum.
    func layout() -> FileLayout {
        let files = [
            FileEntry(path: ["t", "a"], length: 5, offset: 0),
            FileEntry(path: ["t", "empty"], length: 0, offset: 5),
            FileEntry(path: [".pad", "11"], length: 11, offset: 5, attributes: .padding),
            FileEntry(path: ["t", "b"], length: 20, offset: 16),
        ]
        return FileLayout(files: files, geometry: PieceGeometry(totalLength: 36, pieceLength: 16))
    }

    @Test func pieceSpansSkipEmptyFilesAndFlagPadding() {
        let layout = layout()
        #expect(
            layout.spans(of: PieceIndex(0)) == [
                FileSpan(fileIndex: 0, fileOffset: 0, length: 5, isPadding: false),
                FileSpan(fileIndex: 2, fileOffset: 0, length: 11, isPadding: true),
            ])
        #expect(
            layout.spans(of: PieceIndex(1)) == [
                FileSpan(fileIndex: 3, fileOffset: 0, length: 16, isPadding: false)
            ])
        #expect(
            layout.spans(of: PieceIndex(2)) == [
                FileSpan(fileIndex: 3, fileOffset: 16, length: 4, isPadding: false)
            ])
        #expect(layout.spans(of: PieceIndex(3)) == [])
    }

    @Test func arbitraryRangesAreClipped() {
        let layout = layout()
        #expect(
            layout.spans(offset: 3, length: 100) == [
                FileSpan(fileIndex: 0, fileOffset: 3, length: 2, isPadding: false),
                FileSpan(fileIndex: 2, fileOffset: 0, length: 11, isPadding: true),
                FileSpan(fileIndex: 3, fileOffset: 0, length: 20, isPadding: false),
            ])
        #expect(layout.spans(offset: 36, length: 1) == [])
        #expect(layout.spans(offset: -1, length: 1) == [])
        #expect(layout.spans(offset: 0, length: 0) == [])
        #expect(
            layout.spans(of: BlockRange(piece: PieceIndex(1), offset: 2, length: 3)) == [
                FileSpan(fileIndex: 3, fileOffset: 2, length: 3, isPadding: false)
            ])
    }

    @Test func pieceRangesOfFiles() {
        let layout = layout()
        #expect(layout.pieceRange(ofFile: 0) == 0..<1)
        #expect(layout.pieceRange(ofFile: 1) == 0..<0)
        #expect(layout.pieceRange(ofFile: 3) == 1..<3)
    }

    /// With 16 KiB blocks and 64 KiB pieces: a file ending 100 bytes into its piece's second block, then
    /// padding to the piece's end, has two data blocks; a file ending on a block boundary has exactly
    /// its blocks; padding before more data in the same piece, or a file filling its piece, lists nothing.
    @Test func piecesEndingInPaddingListTheirDataBlocks() {
        let block: Int64 = 16384
        let piece: Int64 = 4 * block
        let files = [
            FileEntry(path: ["t", "a"], length: block + 100, offset: 0),
            FileEntry(
                path: [".pad", "a"], length: piece - block - 100, offset: block + 100, attributes: .padding),
            FileEntry(path: ["t", "b"], length: piece + 3 * block, offset: piece),
            FileEntry(path: ["t", "empty"], length: 0, offset: 2 * piece + 3 * block),
            FileEntry(
                path: [".pad", "b"], length: block, offset: 2 * piece + 3 * block, attributes: .padding),
            FileEntry(path: ["t", "c"], length: piece, offset: 3 * piece),
            FileEntry(path: ["t", "d"], length: 10, offset: 4 * piece),
            FileEntry(path: [".pad", "mid"], length: 10, offset: 4 * piece + 10, attributes: .padding),
            FileEntry(path: ["t", "e"], length: 5, offset: 4 * piece + 20),
        ]
        let layout = FileLayout(
            files: files, geometry: PieceGeometry(totalLength: 4 * piece + 25, pieceLength: Int(piece)))
        #expect(layout.dataBlockCounts() == [PieceIndex(0): 2, PieceIndex(2): 3])
        #expect(self.layout().dataBlockCounts() == [:], "one block per piece: nothing to leave out")
    }

    @Test func attributesRoundTripThroughAttrStrings() {
        #expect(FileAttributes(attr: Array("phxl?".utf8)) == [.padding, .hidden, .executable, .symlink])
        #expect(FileAttributes(attr: Array("xh".utf8)).attr == "xh")
        #expect(FileAttributes().attr == nil)
    }
}
