import Engine
import Metainfo
import Swarm
import Testing
import TorrentModel

/// Files to pieces: which pieces a choice of files wants, at what priority, and how files are named.
@Suite struct FilePrioritiesTests {
    /// A multi-file torrent `show` of 100-byte pieces: `a.mkv` 0..<250, a 50-byte padding file, then
    /// `extras/b.txt` 300..<350, an empty `extras/empty`, and `c.mkv` 350..<500.
    static let layout: FileLayout = {
        let entries: [(path: [String], length: Int64, attributes: FileAttributes)] = [
            (["show", "a.mkv"], 250, []), (["show", ".pad", "50"], 50, .padding),
            (["show", "extras", "b.txt"], 50, []), (["show", "extras", "empty"], 0, []),
            (["show", "c.mkv"], 150, []),
        ]
        var offset: Int64 = 0
        var files: [FileEntry] = []
        for entry in entries {
            files.append(
                FileEntry(
                    path: entry.path, length: entry.length, offset: offset, attributes: entry.attributes))
            offset += entry.length
        }
        return FileLayout(files: files, geometry: PieceGeometry(totalLength: offset, pieceLength: 100))
    }()

    func render(_ priorities: [PiecePriority]) -> String { priorities.map { "\($0.value)" }.joined() }

    @Test func everyFileNormalWantsEveryPieceAtNormal() {
        let all = FilePriorities(fileCount: Self.layout.files.count)
        #expect(render(all.piecePriorities(in: Self.layout)) == "44444")
        #expect(all.wantedPieces(in: Self.layout).isComplete)
    }

    @Test func aPieceIsAsWantedAsTheMostWantedFileItTouches() {
        // a.mkv skipped, b.txt high, c.mkv low: piece 3 holds b.txt and the start of c.mkv.
        let chosen = FilePriorities([.skip, .normal, .high, .normal, .low])
        #expect(render(chosen.piecePriorities(in: Self.layout)) == "00061")
        #expect(chosen.wantedPieces(in: Self.layout).pieces == [PieceIndex(3), PieceIndex(4)])
    }

    @Test func aPieceStraddlingASkippedAndAWantedFileIsFetched() {
        // Only c.mkv: piece 3 also holds all of b.txt, which is skipped but shares the piece.
        let chosen = FilePriorities([.skip, .normal, .skip, .skip, .normal])
        #expect(render(chosen.piecePriorities(in: Self.layout)) == "00044")
        #expect(chosen.wantedFiles(in: Self.layout) == [false, false, false, false, true])
    }

    @Test func paddingCountsForNothing() {
        // Piece 2 holds the end of a.mkv and the padding: a skipped a.mkv skips it, whatever the
        // padding file's own priority says.
        let chosen = FilePriorities([.skip, .high, .normal, .normal, .normal])
        #expect(render(chosen.piecePriorities(in: Self.layout)) == "00044")
        #expect(chosen.wantedFiles(in: Self.layout)[1] == false)
    }

    @Test func onlyThenSkipThenAssignmentsInOrder() {
        let chosen = FilePriorities(
            layout: Self.layout, only: [.glob("*.mkv"), .glob("extras/*")], skip: [.glob("*/empty")],
            assignments: [(.high, .indices([4...4])), (.low, .glob("show/extras/*")), (.skip, .glob("a.*"))])
        #expect(chosen.values == [.skip, .skip, .low, .low, .high])
    }

    @Test func withoutOnlyEveryFileStartsWanted() {
        let chosen = FilePriorities(layout: Self.layout, skip: [.glob("*.txt")])
        #expect(chosen.values == [.normal, .normal, .skip, .normal, .normal])
    }

    @Test func globsMatchThePathWithOrWithoutTheTorrentsFolderAndNeverPadding() {
        #expect(FileTarget.glob("*.mkv").files(in: Self.layout) == [0, 4])
        #expect(FileTarget.glob("extras/b.txt").files(in: Self.layout) == [2])
        #expect(FileTarget.glob("show/extras/b.txt").files(in: Self.layout) == [2])
        #expect(FileTarget.glob("*").files(in: Self.layout) == [0, 2, 3, 4])
        #expect(FileTarget.glob("b.txt").files(in: Self.layout).isEmpty)
        #expect(FileTarget.indices([0...2]).files(in: Self.layout) == [0, 2])
    }

    @Test func targetsParseIndicesAndFallBackToGlobs() {
        #expect(FileTarget(parsing: "1,3-5") == .indices([1...1, 3...5]))
        #expect(FileTarget(parsing: "7") == .indices([7...7]))
        #expect(FileTarget(parsing: "*.mkv") == .glob("*.mkv"))
        #expect(FileTarget(parsing: "5-3") == nil)
        #expect(FileTarget(parsing: "1,,2") == nil)
        #expect(FileTarget(parsing: "") == nil)
        #expect(FileTarget(parsing: "1,3-5")?.description == "1,3-5")
        #expect(FileTarget.indices([2...9]).indicesOutOfRange(fileCount: 5) == [9])
    }
}
