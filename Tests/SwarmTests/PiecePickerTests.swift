import Testing
import TorrentModel

@testable import Swarm

/// Two 16 KiB blocks per piece, so a pick of 2 blocks is one whole piece.
let twoBlockPieceLength = 2 * Int(PieceGeometry.standardBlockLength)

/// A picker whose per-piece availability is given in libtorrent's compact notation: `"2223333"` means
/// pieces 0–2 are held by two peers and pieces 3–6 by three.
func makePicker(
    availability notation: String, seed: UInt64 = 1, maximumRequestersPerBlock: Int = 3
) -> PiecePicker {
    let counts = notation.map { Int(String($0))! }
    let geometry = PieceGeometry(
        totalLength: Int64(counts.count * twoBlockPieceLength), pieceLength: twoBlockPieceLength)
    var picker = PiecePicker(
        geometry: geometry, seed: seed, maximumRequestersPerBlock: maximumRequestersPerBlock)
    for (index, count) in counts.enumerated() {
        for _ in 0..<count { picker.incrementAvailability(PieceIndex(index)) }
    }
    return picker
}

extension PieceGeometry {
    func blocks(of piece: PieceIndex) -> [BlockRange] {
        (0..<blockCount(of: piece)).map { block($0, of: piece) }
    }
}

func everything(_ picker: PiecePicker) -> PieceSet { PieceSet(pieceCount: picker.pieceCount, full: true) }

/// The pieces of successive whole-piece picks by one peer that has everything.
func pieceOrder(_ picker: inout PiecePicker, peer: PeerSlot = PeerSlot(1)) -> [Int] {
    var order: [Int] = []
    var blocks: [BlockRange] = []
    while true {
        blocks.removeAll()
        picker.pickBlocks(for: peer, peerHas: everything(picker), maximumCount: 2, into: &blocks)
        guard let first = blocks.first, !picker.isEndgame || order.count < picker.pieceCount else { break }
        #expect(
            blocks.count == 2 && blocks.allSatisfy { $0.piece == first.piece }, "one whole piece per pick")
        order.append(first.piece.int)
        if order.count == picker.pieceCount { break }
    }
    return order
}

@Suite struct PiecePickerTests {
    @Test func rarestPiecesComeFirst() {
        var picker = makePicker(availability: "3332223441")
        let order = pieceOrder(&picker)
        #expect(order.count == 10)
        #expect(order[0] == 9)
        #expect(Set(order[1...3]) == [3, 4, 5])
        #expect(Set(order[4...7]) == [0, 1, 2, 6])
        #expect(Set(order[8...9]) == [7, 8])
    }

    @Test func tieBreakIsRandomButReplaysFromTheSeed() {
        var orders: Set<[Int]> = []
        for seed in UInt64(0)..<20 {
            var first = makePicker(availability: "2222222", seed: seed)
            var again = makePicker(availability: "2222222", seed: seed)
            let order = pieceOrder(&first)
            #expect(order == pieceOrder(&again), "seed \(seed) must replay")
            #expect(order.sorted() == Array(0..<7))
            orders.insert(order)
        }
        #expect(orders.count > 10, "equal pieces must not come in a fixed order")
        #expect(Set(orders.map { $0[0] }).count > 3, "any of the equals may come first")
    }

    @Test func availabilityChangesReorderPieces() {
        var picker = makePicker(availability: "2222")
        picker.decrementAvailability(PieceIndex(2))
        picker.incrementAvailability(PieceIndex(0))
        picker.addSeed()  // uniform: changes nothing in the order
        let order = pieceOrder(&picker)
        #expect(order.first == 2)
        #expect(order.last == 0)
        #expect(picker.availability(of: PieceIndex(0)) == 4)
    }

    @Test func startedPiecesAreFinishedBeforeRarerOnes() {
        var picker = makePicker(availability: "2333")
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        #expect(blocks == [picker.geometry.block(0, of: PieceIndex(0))])
        // Piece 1 becomes the rarest, but piece 0 is already started.
        picker.decrementAvailability(PieceIndex(1))
        picker.decrementAvailability(PieceIndex(1))
        blocks.removeAll()
        picker.pickBlocks(for: PeerSlot(2), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        #expect(
            blocks == [
                picker.geometry.block(1, of: PieceIndex(0)), picker.geometry.block(0, of: PieceIndex(1)),
            ])
        #expect(picker.state(of: PieceIndex(0)) == .downloading)
    }

    @Test func peersOnlyGetPiecesTheyHave() {
        var picker = makePicker(availability: "1111111")
        var peerHas = PieceSet(pieceCount: 7)
        peerHas.insert(PieceIndex(5))
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: peerHas, maximumCount: 10, into: &blocks)
        #expect(blocks.map(\.piece) == [PieceIndex(5), PieceIndex(5)])
        #expect(!picker.isEndgame)
    }

    @Test func sequentialModeIgnoresRarityButSkipsDeselectedPieces() {
        var picker = makePicker(availability: "3332111")
        picker.setSequential(true)
        picker.setPriority(.skip, of: PieceIndex(2))
        #expect(pieceOrder(&picker) == [0, 1, 3, 4, 5, 6])
    }

    @Test func sequentialModeRevisitsAReopenedBlock() {
        var picker = makePicker(availability: "1111")
        picker.setSequential(true)
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 4, into: &blocks)
        picker.releaseRequest(blocks[1], from: PeerSlot(1))
        blocks.removeAll()
        picker.pickBlocks(for: PeerSlot(2), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        #expect(blocks == [picker.geometry.block(1, of: PieceIndex(0))])
    }

    @Test func priorityOrdersPiecesAndZeroSkips() {
        var picker = makePicker(availability: "1333")
        picker.setPriority(.skip, of: PieceIndex(0))
        picker.setPriority(.highest, of: PieceIndex(3))
        let order = pieceOrder(&picker)
        #expect(order.first == 3)
        #expect(!order.contains(0))
        #expect(order.count == 3)
        // Selecting the piece again makes it pickable.
        picker.setPriority(.normal, of: PieceIndex(0))
        #expect(pieceOrder(&picker) == [0])
    }

    @Test func aBlockIsAcceptedOnceAndCompletesItsPiece() {
        var picker = makePicker(availability: "1")
        var blocks: [BlockRange] = []
        var cancels: [PeerSlot] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        #expect(
            picker.blockReceived(blocks[0], from: PeerSlot(1), cancelTo: &cancels)
                == .accepted(pieceComplete: false))
        #expect(picker.blockReceived(blocks[0], from: PeerSlot(1), cancelTo: &cancels) == .duplicate)
        #expect(
            picker.blockReceived(blocks[1], from: PeerSlot(1), cancelTo: &cancels)
                == .accepted(pieceComplete: true))
        #expect(picker.state(of: PieceIndex(0)) == .awaitingHash)
        #expect(picker.blockReceived(blocks[1], from: PeerSlot(1), cancelTo: &cancels) == .duplicate)
        let misaligned = BlockRange(piece: PieceIndex(0), offset: 1, length: 16384)
        #expect(picker.blockReceived(misaligned, from: PeerSlot(1), cancelTo: &cancels) == .unexpected)
        #expect(cancels.isEmpty)
        picker.pieceHashPassed(PieceIndex(0))
        #expect(picker.isFinished)
        #expect(picker.have.contains(PieceIndex(0)))
    }

    @Test func hashFailureReopensThePieceAndNamesItsSenders() {
        var picker = makePicker(availability: "22")
        var blocks: [BlockRange] = []
        var cancels: [PeerSlot] = []
        picker.pickBlocks(for: PeerSlot(7), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        picker.pickBlocks(for: PeerSlot(3), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        #expect(blocks[0].piece == blocks[1].piece)
        _ = picker.blockReceived(blocks[0], from: PeerSlot(7), cancelTo: &cancels)
        #expect(
            picker.blockReceived(blocks[1], from: PeerSlot(3), cancelTo: &cancels)
                == .accepted(pieceComplete: true))
        #expect(
            picker.pieceHashFailed(blocks[0].piece).contributions == [
                PieceContribution(peer: PeerSlot(3), blockCount: 1),
                PieceContribution(peer: PeerSlot(7), blockCount: 1),
            ])
        #expect(picker.state(of: blocks[0].piece) == .missing)
        #expect(picker.blockState(of: blocks[0]) == .open)
        #expect(pieceOrder(&picker).sorted() == [0, 1])
    }

    /// The engine copies a block's bytes into its piece buffer only while this says so: never over a
    /// block already in, nor into a piece being hashed or verified, nor one nobody is fetching (a late
    /// block of a piece that failed its hash took a buffer nothing ever gave back).
    @Test func blockDataIsAcceptedUntilTheBlockIsInAndNotOnceThePieceIsComplete() {
        var picker = makePicker(availability: "2")
        var cancels: [PeerSlot] = []
        var blocks: [BlockRange] = []
        let piece = PieceIndex(0)
        let (first, second) = (picker.geometry.block(0, of: piece), picker.geometry.block(1, of: piece))
        // Booleans first: a failed expectation would print the whole picker.
        let missingTakesData = picker.acceptsData(for: first)
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        #expect(blocks == [first, second])
        _ = picker.blockReceived(first, from: PeerSlot(1), cancelTo: &cancels)
        let (firstAgain, secondStill) = (picker.acceptsData(for: first), picker.acceptsData(for: second))
        _ = picker.blockReceived(second, from: PeerSlot(1), cancelTo: &cancels)
        let whileHashed = picker.acceptsData(for: second)
        _ = picker.pieceHashPassed(piece)
        let onceVerified = picker.acceptsData(for: second)
        #expect(!missingTakesData && !firstAgain && secondStill)
        #expect(!whileHashed && !onceVerified)
    }

    @Test func digestsNameTheSenderOfACorruptBlock() {
        var picker = makePicker(availability: "3")
        var cancels: [PeerSlot] = []
        let first = picker.geometry.block(0, of: PieceIndex(0))
        let second = picker.geometry.block(1, of: PieceIndex(0))
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        _ = picker.blockReceived(first, from: PeerSlot(1), cancelTo: &cancels)
        // Peer 2 sends a bad block it was not asked for: accepted all the same (we need it), later proven bad.
        _ = picker.blockReceived(second, from: PeerSlot(2), cancelTo: &cancels)
        let failure = picker.pieceHashFailed(PieceIndex(0), blockDigests: [10, 66])
        #expect(failure.culpritsWillBeIdentified)
        #expect(failure.provenCorrupt.isEmpty)
        #expect(picker.hasFailedAttempts(PieceIndex(0)))
        blocks.removeAll()
        picker.pickBlocks(for: PeerSlot(3), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        _ = picker.blockReceived(first, from: PeerSlot(3), cancelTo: &cancels)
        _ = picker.blockReceived(second, from: PeerSlot(3), cancelTo: &cancels)
        let success = picker.pieceHashPassed(PieceIndex(0), blockDigests: [10, 20])
        #expect(success.provenCorrupt == [PieceContribution(peer: PeerSlot(2), blockCount: 1)])
        #expect(success.contributions == [PieceContribution(peer: PeerSlot(3), blockCount: 2)])
        #expect(!picker.hasFailedAttempts(PieceIndex(0)))
    }

    @Test func evidenceIsKeptForABoundedNumberOfAttempts() {
        var picker = makePicker(availability: "3")
        var cancels: [PeerSlot] = []
        var blocks: [BlockRange] = []
        let attempts = PiecePicker.failedAttemptsRemembered + 2
        for attempt in 0..<attempts {
            // Each attempt comes from a different liar, with a wrong digest for block 1.
            let liar = PeerSlot(UInt32(10 + attempt))
            picker.pickBlocks(for: liar, peerHas: everything(picker), maximumCount: 2, into: &blocks)
            for block in picker.geometry.blocks(of: PieceIndex(0)) {
                _ = picker.blockReceived(block, from: liar, cancelTo: &cancels)
            }
            picker.pieceHashFailed(PieceIndex(0), blockDigests: [0, UInt64(1000 + attempt)])
        }
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        for block in picker.geometry.blocks(of: PieceIndex(0)) {
            _ = picker.blockReceived(block, from: PeerSlot(1), cancelTo: &cancels)
        }
        let proven = picker.pieceHashPassed(PieceIndex(0), blockDigests: [0, 1]).provenCorrupt.map(
            \.peer.value)
        #expect(proven == Array(UInt32(12)..<UInt32(10 + attempts)), "the oldest two attempts were forgotten")
    }

    @Test func withoutDigestsNoOneIsProven() {
        var picker = makePicker(availability: "3")
        var cancels: [PeerSlot] = []
        let first = picker.geometry.block(0, of: PieceIndex(0))
        let second = picker.geometry.block(1, of: PieceIndex(0))
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        _ = picker.blockReceived(first, from: PeerSlot(1), cancelTo: &cancels)
        _ = picker.blockReceived(second, from: PeerSlot(2), cancelTo: &cancels)
        #expect(!picker.pieceHashFailed(PieceIndex(0)).culpritsWillBeIdentified)
        #expect(!picker.hasFailedAttempts(PieceIndex(0)))
        picker.pickBlocks(for: PeerSlot(3), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        _ = picker.blockReceived(first, from: PeerSlot(3), cancelTo: &cancels)
        _ = picker.blockReceived(second, from: PeerSlot(3), cancelTo: &cancels)
        #expect(picker.pieceHashPassed(PieceIndex(0), blockDigests: [11, 20]).provenCorrupt.isEmpty)
    }

    @Test func discardedBlocksOfASuspectAreOpenAgainOnlyInUnfinishedPieces() {
        var picker = makePicker(availability: "33")
        var cancels: [PeerSlot] = []
        let liar = PeerSlot(1)
        let honest = PeerSlot(2)
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: liar, peerHas: everything(picker), maximumCount: 4, into: &blocks)
        let pieces = Set(blocks.map(\.piece))
        #expect(pieces.count == 2)
        // One piece complete (awaiting its hash), the other half in from the liar and half from another.
        let complete = blocks[0].piece
        for block in blocks where block.piece == complete {
            _ = picker.blockReceived(block, from: liar, cancelTo: &cancels)
        }
        let partial = blocks.first { $0.piece != complete }!.piece
        let partialBlocks = picker.geometry.blocks(of: partial)
        _ = picker.blockReceived(partialBlocks[0], from: liar, cancelTo: &cancels)
        _ = picker.blockReceived(partialBlocks[1], from: honest, cancelTo: &cancels)
        #expect(picker.state(of: partial) == .awaitingHash)
        // Nothing to discard: both pieces are awaiting their hash.
        #expect(picker.discardBlocks(from: liar) == 0)
        picker.pieceHashFailed(complete)
        #expect(picker.state(of: complete) == .missing)

        var more: [BlockRange] = []
        picker.pickBlocks(for: liar, peerHas: everything(picker), maximumCount: 1, into: &more)
        _ = picker.blockReceived(more[0], from: liar, cancelTo: &cancels)
        #expect(picker.discardBlocks(from: liar) == 1)
        #expect(picker.blockState(of: more[0]) == .open)
        #expect(picker.state(of: partial) == .awaitingHash, "a piece being hashed keeps its blocks")
    }

    @Test func releasedRequestsAreOpenAgain() {
        var picker = makePicker(availability: "1")
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 2, into: &blocks)
        #expect(picker.isEndgame)
        picker.releaseRequest(blocks[1], from: PeerSlot(1))
        #expect(picker.blockState(of: blocks[1]) == .open)
        #expect(!picker.isEndgame)
        picker.releaseRequest(blocks[1], from: PeerSlot(1))  // twice is harmless
        var again: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(2), peerHas: everything(picker), maximumCount: 2, into: &again)
        // The open block first; only then, with everything requested, an endgame duplicate.
        #expect(again == [blocks[1], blocks[0]])
    }

    @Test func endgameDuplicatesAreBoundedAndCancelledOnArrival() {
        var picker = makePicker(availability: "3", maximumRequestersPerBlock: 2)
        var first: [BlockRange] = []
        var second: [BlockRange] = []
        var third: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 10, into: &first)
        #expect(first.count == 2)
        #expect(picker.isEndgame)
        picker.pickBlocks(for: PeerSlot(2), peerHas: everything(picker), maximumCount: 10, into: &second)
        #expect(second == first, "endgame duplicates every requested block")
        picker.pickBlocks(for: PeerSlot(3), peerHas: everything(picker), maximumCount: 10, into: &third)
        #expect(third.isEmpty, "at most two requesters per block")
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 10, into: &third)
        #expect(third.isEmpty, "a peer never gets the same block twice")
        #expect(Set(picker.requesters(of: first[0])) == [PeerSlot(1), PeerSlot(2)])
        var cancels: [PeerSlot] = []
        #expect(
            picker.blockReceived(first[0], from: PeerSlot(2), cancelTo: &cancels)
                == .accepted(pieceComplete: false))
        #expect(cancels == [PeerSlot(1)])
        cancels.removeAll()
        #expect(picker.blockReceived(first[0], from: PeerSlot(1), cancelTo: &cancels) == .duplicate)
        #expect(cancels.isEmpty)
    }

    @Test func resumedPiecesAreNeverPicked() {
        let geometry = PieceGeometry(
            totalLength: Int64(4 * twoBlockPieceLength), pieceLength: twoBlockPieceLength)
        var have = PieceSet(pieceCount: 4)
        have.insert(PieceIndex(1))
        var picker = PiecePicker(geometry: geometry, have: have, seed: 9)
        picker.markVerified(PieceIndex(2))
        for piece in 0..<4 { picker.incrementAvailability(PieceIndex(piece)) }
        #expect(pieceOrder(&picker).sorted() == [0, 3])
        #expect(!picker.wantsAnything(from: have))
    }

    @Test func shortLastPieceHasAShortBlock() {
        let geometry = PieceGeometry(
            totalLength: Int64(twoBlockPieceLength + 100), pieceLength: twoBlockPieceLength)
        var picker = PiecePicker(geometry: geometry, seed: 2)
        picker.incrementAvailability(PieceIndex(1))
        picker.incrementAvailability(PieceIndex(0))
        picker.incrementAvailability(PieceIndex(0))
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        #expect(blocks == [BlockRange(piece: PieceIndex(1), offset: 0, length: 100)])
    }

    /// A piece that ends in padding is asked for only up to its data blocks, complete once they are in;
    /// a padding block is never taken from a peer.
    @Test func paddingBlocksAreNeitherAskedForNorAccepted() {
        let geometry = PieceGeometry(
            totalLength: Int64(2 * twoBlockPieceLength), pieceLength: twoBlockPieceLength)
        var picker = PiecePicker(geometry: geometry, seed: 4, dataBlockCounts: [PieceIndex(0): 1])
        picker.incrementAvailability(PieceIndex(0))
        picker.incrementAvailability(PieceIndex(1))
        var blocks: [BlockRange] = []
        var cancels: [PeerSlot] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 10, into: &blocks)
        #expect(
            blocks.sorted { ($0.piece, $0.offset) < ($1.piece, $1.offset) } == [
                geometry.block(0, of: PieceIndex(0))
            ] + geometry.blocks(of: PieceIndex(1)))
        let padding = geometry.block(1, of: PieceIndex(0))
        #expect(picker.blockState(of: padding) == .received)
        #expect(picker.blockReceived(padding, from: PeerSlot(1), cancelTo: &cancels) == .unexpected)
        #expect(
            picker.blockReceived(geometry.block(0, of: PieceIndex(0)), from: PeerSlot(1), cancelTo: &cancels)
                == .accepted(pieceComplete: true))
    }

    @Test func thousandsOfPiecesComeOutInAvailabilityOrderWithoutScanning() {
        let pieceCount = 5000
        let geometry = PieceGeometry(
            totalLength: Int64(pieceCount * twoBlockPieceLength), pieceLength: twoBlockPieceLength)
        var picker = PiecePicker(geometry: geometry, seed: 3)
        var random = SeededRandom(seed: 99)
        // 300 peers come with random bitfields and a third of them leave again.
        var bitfields: [PieceSet] = []
        for _ in 0..<300 {
            var pieces = PieceSet(pieceCount: pieceCount)
            for piece in 0..<pieceCount where random.next() % 4 == 0 { pieces.insert(PieceIndex(piece)) }
            picker.addAvailability(pieces)
            bitfields.append(pieces)
        }
        for bitfield in bitfields.prefix(100) { picker.removeAvailability(bitfield) }
        let examinedBefore = picker.piecesExamined
        let order = pieceOrder(&picker)
        #expect(order.count == pieceCount)
        let availabilities = order.map { picker.availability(of: PieceIndex($0)) }
        #expect(availabilities == availabilities.sorted(), "every pick takes a rarest piece")
        // A peer with every piece finds one at the first place it looks: one examined piece per pick.
        #expect(picker.piecesExamined - examinedBefore == pieceCount)
    }

    @Test func rateMeterAveragesOverItsWindowAndForgetsSilence() {
        var meter = RateMeter(window: .seconds(4))
        #expect(meter.rateBytesPerSecond(at: .seconds(1)) == 0)
        for tenth in 0..<100 {  // 10 s at 100 KB/s, in 10 KB samples
            meter.record(bytes: 10_000, at: .seconds(Double(tenth) / 10))
        }
        let rate = meter.rateBytesPerSecond(at: .seconds(10))
        #expect(abs(rate - 100_000) < 5_000, "\(rate)")
        #expect(meter.rateBytesPerSecond(at: .seconds(12)) < rate * 0.7, "decays as the window slides")
        #expect(meter.rateBytesPerSecond(at: .seconds(15)) == 0, "a full window of silence")
        #expect(meter.totalBytes == 1_000_000)
    }
}

/// The cap on pieces in progress: the engine's piece buffers, lowered while verified pieces wait for disk.
@Suite struct PiecesInProgressCapTests {
    @Test func noNewPieceStartsBeyondTheCap() {
        var picker = makePicker(availability: "1111111111")
        let noPickRefused = picker.setMaximumPiecesInProgress(2)
        #expect(!noPickRefused)
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 20, into: &blocks)
        #expect(blocks.count == 4, "two pieces of two blocks, then the cap")
        #expect(Set(blocks.map(\.piece)).count == 2)
        #expect(picker.inProgressCount == 2)
    }

    @Test func raisingTheCapAfterARefusalAsksForAnotherPick() {
        var picker = makePicker(availability: "1111111111")
        _ = picker.setMaximumPiecesInProgress(1)
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 20, into: &blocks)
        #expect(blocks.count == 2)
        // The same cap again leaves no room: nothing to pick for.
        let sameCap = picker.setMaximumPiecesInProgress(1)
        #expect(!sameCap)
        let raised = picker.setMaximumPiecesInProgress(3)
        #expect(raised)
        // Once answered, a later raise without a new refusal does not ask again.
        let raisedAgain = picker.setMaximumPiecesInProgress(4)
        #expect(!raisedAgain)
        blocks.removeAll()
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 20, into: &blocks)
        #expect(blocks.count == 6, "three more pieces under a cap of four")
    }

    @Test func startedPiecesStillGetRequestsWhenCapped() {
        var picker = makePicker(availability: "1111")
        var blocks: [BlockRange] = []
        picker.pickBlocks(for: PeerSlot(1), peerHas: everything(picker), maximumCount: 1, into: &blocks)
        let started = blocks[0].piece
        _ = picker.setMaximumPiecesInProgress(1)
        for sequential in [false, true] {
            var copy = picker
            copy.setSequential(sequential)
            var more: [BlockRange] = []
            copy.pickBlocks(for: PeerSlot(2), peerHas: everything(copy), maximumCount: 8, into: &more)
            #expect(more.count == 1 && more[0].piece == started, "sequential: \(sequential)")
        }
    }

    @Test func pipelineRefillsPeersWhenTheCapRises() {
        let geometry = PieceGeometry(
            totalLength: Int64(8 * twoBlockPieceLength), pieceLength: twoBlockPieceLength)
        var pipeline = RequestPipeline(geometry: geometry, seed: 7)
        var actions: [RequestAction] = []
        let start = Instant(nanoseconds: 0)
        pipeline.limitPiecesInProgress(to: 1, at: start, into: &actions)
        let peer = PeerSlot(0)
        pipeline.peerConnected(peer)
        pipeline.peerHaveAll(peer, into: &actions)
        pipeline.peerUnchokedUs(peer, at: start, into: &actions)
        let requested = { (actions: [RequestAction]) in
            actions.filter { if case .request = $0 { true } else { false } }.count
        }
        #expect(requested(actions) == 2, "one piece under a cap of one")
        actions.removeAll()
        pipeline.limitPiecesInProgress(to: 3, at: start, into: &actions)
        // A new peer's queue holds `minimumQueueLength` (4) blocks: two more, from a second piece.
        #expect(requested(actions) == 2, "the queue topped up once the cap rises")
        #expect(pipeline.picker.inProgressCount == 2)
    }
}
