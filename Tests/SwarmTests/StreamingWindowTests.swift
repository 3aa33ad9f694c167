import Swarm
import Testing
import TorrentModel

/// The streaming window: which pieces are raised, and how it moves as pieces are verified.
@Suite struct StreamingWindowTests {
    /// Priorities from a compact notation: one digit per piece (0 skips).
    func priorities(_ notation: String) -> [PiecePriority] {
        notation.map { PiecePriority(UInt8(String($0))!) }
    }

    func have(_ pieces: [Int], of count: Int) -> PieceSet {
        var set = PieceSet(pieceCount: count)
        for piece in pieces { set.insert(PieceIndex(piece)) }
        return set
    }

    /// Each piece's priority in the window, as digits.
    func render(_ window: StreamingWindow) -> String {
        window.base.indices.map { "\(window.priority(of: PieceIndex($0)).value)" }.joined()
    }

    @Test func theWindowRaisesTheNextPiecesFromTheFirstMissingWantedOne() {
        var window = StreamingWindow(lengthPieces: 3, base: priorities("44444444"))
        var changes: [PriorityChange] = []
        window.advance(have: have([], of: 8), into: &changes)
        #expect(render(window) == "77744444")
        #expect(changes.map(\.piece.int) == [0, 1, 2])
        #expect(changes.allSatisfy { $0.priority == .highest })
    }

    @Test func verifyingTheFirstPieceMovesTheWindowOneOn() {
        var window = StreamingWindow(lengthPieces: 3, base: priorities("44444444"))
        var changes: [PriorityChange] = []
        window.advance(have: have([], of: 8), into: &changes)
        changes.removeAll()
        window.advance(have: have([0], of: 8), into: &changes)
        #expect(render(window) == "47774444")
        #expect(
            changes == [
                PriorityChange(piece: PieceIndex(0), priority: .normal),
                PriorityChange(piece: PieceIndex(3), priority: .highest),
            ])
    }

    @Test func piecesVerifiedAheadOfTheStartDoNotMoveItUntilTheGapFills() {
        var window = StreamingWindow(lengthPieces: 3, base: priorities("44444444"))
        var changes: [PriorityChange] = []
        window.advance(have: have([1, 2], of: 8), into: &changes)
        #expect(window.start == 0)
        changes.removeAll()
        // Piece 0 arrives: the window jumps past the run of verified pieces.
        window.advance(have: have([0, 1, 2], of: 8), into: &changes)
        #expect(window.start == 3)
        #expect(render(window) == "44477744")
        #expect(Set(changes.map(\.piece.int)) == [0, 1, 2, 3, 4, 5])
    }

    @Test func skippedPiecesAreNeitherRaisedNorWaitedFor() {
        var window = StreamingWindow(lengthPieces: 3, base: priorities("00440444"))
        var changes: [PriorityChange] = []
        window.advance(have: have([], of: 8), into: &changes)
        #expect(window.start == 2)
        #expect(render(window) == "00770444")
        changes.removeAll()
        window.advance(have: have([2, 3], of: 8), into: &changes)
        #expect(window.start == 5)
        #expect(render(window) == "00440777")
    }

    @Test func theWindowStopsAtTheLastPieceAndEmptiesWhenAllIsVerified() {
        var window = StreamingWindow(lengthPieces: 4, base: priorities("444"))
        var changes: [PriorityChange] = []
        window.advance(have: have([], of: 3), into: &changes)
        #expect(render(window) == "777")
        window.advance(have: have([0, 1, 2], of: 3), into: &changes)
        #expect(window.pieces.isEmpty)
        #expect(render(window) == "444")
    }

    @Test func newBasePrioritiesPlaceTheWindowAgainAndReportOnlyChanges() {
        var window = StreamingWindow(lengthPieces: 2, base: priorities("444444"))
        var changes: [PriorityChange] = []
        window.advance(have: have([], of: 6), into: &changes)
        changes.removeAll()
        // The first three pieces' files are skipped now, the last one is high.
        window.setBase(priorities("000446"), have: have([], of: 6), into: &changes)
        #expect(window.start == 3)
        #expect(render(window) == "000776")
        #expect(
            changes == [
                PriorityChange(piece: PieceIndex(0), priority: .skip),
                PriorityChange(piece: PieceIndex(1), priority: .skip),
                PriorityChange(piece: PieceIndex(2), priority: .skip),
                PriorityChange(piece: PieceIndex(3), priority: .highest),
                PriorityChange(piece: PieceIndex(4), priority: .highest),
                PriorityChange(piece: PieceIndex(5), priority: PiecePriority(6)),
            ])
    }
}

/// The window in a picker: raised pieces are started before the rest, rarest first or not.
@Suite struct StreamingWindowPickingTests {
    @Test func aSeedIsAskedForTheWindowFirst() {
        let geometry = PieceGeometry(totalLength: 16 * 16_384, pieceLength: 16_384)
        var picker = PiecePicker(geometry: geometry, seed: 7)
        var window = StreamingWindow(
            lengthPieces: 2, base: Array(repeating: .normal, count: geometry.pieceCount))
        var changes: [PriorityChange] = []
        window.advance(have: picker.have, into: &changes)
        for change in changes { picker.setPriority(change.priority, of: change.piece) }
        picker.addSeed()
        var blocks: [BlockRange] = []
        picker.pickBlocks(
            for: PeerSlot(0), peerHas: PieceSet(pieceCount: geometry.pieceCount, full: true), maximumCount: 2,
            into: &blocks)
        #expect(Set(blocks.map(\.piece.int)) == [0, 1])
    }
}
