import Testing
import TorrentModel

@testable import Swarm

/// A picker in BEP 19's notation, one character per piece of two blocks: `Y` we have it, `n` missing,
/// `r` missing but being fetched whole by a peer (slot 9), `s` missing and skipped, `h` missing at the
/// highest priority. A web seed (a seed) is connected.
func makePicker(gaps notation: String) -> PiecePicker {
    let geometry = PieceGeometry(
        totalLength: Int64(notation.count * twoBlockPieceLength), pieceLength: twoBlockPieceLength)
    var have = PieceSet(pieceCount: notation.count)
    var fetched = PieceSet(pieceCount: notation.count)
    for (index, mark) in notation.enumerated() {
        if mark == "Y" { have.insert(PieceIndex(index)) }
        if mark == "r" { fetched.insert(PieceIndex(index)) }
    }
    var picker = PiecePicker(geometry: geometry, have: have, seed: 7)
    for (index, mark) in notation.enumerated() {
        if mark == "s" { picker.setPriority(.skip, of: PieceIndex(index)) }
        if mark == "h" { picker.setPriority(.highest, of: PieceIndex(index)) }
    }
    picker.addSeed()
    var blocks: [BlockRange] = []
    picker.pickBlocks(for: PeerSlot(9), peerHas: fetched, maximumCount: 2 * notation.count, into: &blocks)
    var fetchedPieces: Set<Int> = []
    fetched.forEach { fetchedPieces.insert($0.int) }
    #expect(Set(blocks.map(\.piece.int)) == fetchedPieces, "the peer fetches its pieces")
    return picker
}

/// What one `pickRun` for the web seed (slot 1) gave: its blocks' pieces, each piece once in order.
func runPieces(
    _ picker: inout PiecePicker, maximumCount: Int, after: BlockRange? = nil
) -> (
    pieces: [Int], last: BlockRange?
) {
    var blocks: [BlockRange] = []
    picker.pickRun(
        for: PeerSlot(1), peerHas: everything(picker), maximumCount: maximumCount, after: after, into: &blocks
    )
    var pieces: [Int] = []
    for block in blocks where pieces.last != block.piece.int { pieces.append(block.piece.int) }
    return (pieces, blocks.last)
}

@Suite struct PiecePickerRunTests {
    @Test func largestGapIsTheLongestRunAndTheFirstOnATie() {
        func gap(_ notation: String) -> Range<Int>? {
            let marks = Array(notation)
            return PiecePicker.largestGap(count: marks.count) { marks[$0] == "n" }
        }
        #expect(gap("YYnnnnYnnY") == 2..<6)  // BEP 19's example
        #expect(gap("nnYnn") == 0..<2)
        #expect(gap("YnnYnnn") == 4..<7)
        #expect(gap("YYY") == nil)
        #expect(gap("") == nil)
    }

    /// BEP 19: "given a bitfield YYnnnnYnnY it should start at #: YY#nnnYnnY", and go on until it
    /// reaches a piece it has; then the next gap.
    @Test func aRunStartsAtTheLargestGapAndGoesOnToItsEnd() {
        var picker = makePicker(gaps: "YYnnnnYnnY")
        let first = runPieces(&picker, maximumCount: 2)
        #expect(first.pieces == [2])
        #expect(runPieces(&picker, maximumCount: 100, after: first.last).pieces == [3, 4, 5, 7, 8])
    }

    @Test func piecesPeersFetchEndGaps() {
        var picker = makePicker(gaps: "nnrnnnnrnn")
        #expect(runPieces(&picker, maximumCount: 2).pieces == [3])
    }

    /// Once started, a run goes on in order even when a peer made another gap larger meanwhile; a new
    /// one starts only where it stops.
    @Test func aRunGoesOnInOrderPastALargerGapElsewhere() {
        var picker = makePicker(gaps: "nnnnnnnnYnnnn")
        let first = runPieces(&picker, maximumCount: 4)
        #expect(first.pieces == [0, 1])
        var blocks: [BlockRange] = []
        var peerHas = PieceSet(pieceCount: 13)
        for piece in 4...7 { peerHas.insert(PieceIndex(piece)) }
        picker.addAvailability(peerHas)
        picker.pickBlocks(for: PeerSlot(9), peerHas: peerHas, maximumCount: 8, into: &blocks)
        let second = runPieces(&picker, maximumCount: 4, after: first.last)
        #expect(second.pieces == [2, 3])
        #expect(runPieces(&picker, maximumCount: 2, after: second.last).pieces == [9])
    }

    /// A run cut in the middle of a piece goes on at its next block: the blocks stay adjacent.
    @Test func aRunCutInsideAPieceGoesOnAtItsNextBlock() {
        var picker = makePicker(gaps: "nnnn")
        var blocks: [BlockRange] = []
        picker.pickRun(
            for: PeerSlot(1), peerHas: everything(picker), maximumCount: 3, after: nil, into: &blocks)
        picker.pickRun(
            for: PeerSlot(1), peerHas: everything(picker), maximumCount: 3, after: blocks.last, into: &blocks)
        let geometry = picker.geometry
        #expect(blocks == (0..<3).flatMap { geometry.blocks(of: PieceIndex($0)) })
    }

    @Test func skippedPiecesEndGapsAndAreNeverPicked() {
        var picker = makePicker(gaps: "nnsnnnYn")
        let first = runPieces(&picker, maximumCount: 2)
        #expect(first.pieces == [3])
        #expect(runPieces(&picker, maximumCount: 100, after: first.last).pieces == [4, 5, 0, 1, 7])
    }

    @Test func theHighestPriorityGapsComeFirst() {
        var picker = makePicker(gaps: "nnnnnhhn")
        let first = runPieces(&picker, maximumCount: 4)
        #expect(first.pieces == [5, 6])
        // The run goes on into the next piece, then to the largest gap left.
        #expect(runPieces(&picker, maximumCount: 100, after: first.last).pieces == [7, 0, 1, 2, 3, 4])
    }

    /// With every missing piece being fetched there is no gap: open blocks of started pieces are taken,
    /// then (endgame) blocks others were asked for.
    @Test func withoutGapsStartedPiecesAreFinishedThenDuplicated() {
        var picker = makePicker(gaps: "Yn")
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(9), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        #expect(blocks == [picker.geometry.block(0, of: PieceIndex(1))])
        blocks.removeAll()
        picker.pickRun(
            for: PeerSlot(1), peerHas: everything(picker), maximumCount: 4, after: nil, into: &blocks)
        #expect(
            blocks == [
                picker.geometry.block(1, of: PieceIndex(1)), picker.geometry.block(0, of: PieceIndex(1)),
            ])
    }

    @Test func theCapOnPiecesInProgressHolds() {
        var picker = makePicker(gaps: "nnnn")
        _ = picker.setMaximumPiecesInProgress(1)
        #expect(runPieces(&picker, maximumCount: 100).pieces == [0])
    }

    /// A web seed in the pipeline gets one long run at once, and more only once its queue is half empty.
    @Test func aWebSeedIsToppedUpWithRunsOnceHalfEmpty() {
        var harness = PipelineHarness(pieceCount: 1024, pieceLength: 32 * 1024)
        let seed = PeerSlot(3)
        harness.pipeline.peerConnected(seed)
        harness.pipeline.peerServesRanges(seed)
        harness.pipeline.peerAdvertisedRequestQueue(seed, length: 500)
        harness.pipeline.peerHaveAll(seed, into: &harness.actions)
        harness.pipeline.peerUnchokedUs(seed, at: .zero, into: &harness.actions)
        let geometry = harness.pipeline.picker.geometry
        let all = (0..<1024).flatMap { geometry.blocks(of: PieceIndex($0)) }
        #expect(harness.requests(to: seed) == Array(all[0..<4]))
        // Fed at 1 MiB/s the queue grows towards 3 s of that rate. Each delivery frees one block, but
        // the seed is only topped up once half empty, with at least half a queue of blocks.
        let interval = Double(harness.blockLength) / Double(1 << 20)
        var topUps: [Int] = []
        for delivery in 1...128 {
            let before = harness.actions.count
            let now = Instant.seconds(Double(delivery) * interval)
            harness.deliverOldest(from: seed, at: now)
            let added = harness.actions[before...].count { if case .request = $0 { true } else { false } }
            guard added > 0 else { continue }
            topUps.append(added)
            #expect(added * 2 >= harness.pipeline.targetQueueLength(for: seed, at: now), "\(topUps)")
        }
        #expect(!topUps.isEmpty && topUps.count <= 32, "\(topUps)")
        // And every request is the next block in payload order: one run.
        let requests = harness.requests(to: seed)
        #expect(requests == Array(all[0..<requests.count]))
    }
}
