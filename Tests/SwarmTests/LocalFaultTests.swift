import Testing
import TorrentModel

@testable import Swarm

/// When every peer that sent a piece failed it, the fault is likelier ours than theirs: nobody is
/// charged for it again (issue #19: an honest seeder was banned because our v2 check was wrong).
@Suite struct LocalFaultTests {
    let honest = PeerSlot(1)
    let other = PeerSlot(2)

    /// Completes the piece of `peer`'s oldest request by delivering that piece's outstanding blocks.
    func completeNextPiece(
        _ harness: inout PipelineHarness, from peer: PeerSlot, at now: Instant
    ) -> PieceIndex {
        let piece = harness.pipeline.outstandingRequests(of: peer)[0].piece
        for block in harness.pipeline.outstandingRequests(of: peer) where block.piece == piece {
            _ = harness.pipeline.blockReceived(block, from: peer, at: now, into: &harness.actions)
        }
        return piece
    }

    /// Regression for issue #19: one honest seeder, one piece our check always rejects. The seeder is
    /// charged for the first failure only, and never banned, however often the piece comes back.
    @Test func aPieceThatAlwaysFailsFromItsOnlySenderNeverGetsItBanned() {
        var harness = PipelineHarness(pieceCount: 6, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(honest)
        let wronglyRejected = PieceIndex(3)
        var reports: [HashFailureReport] = []
        var time = 0.0
        while reports.count < 10 {
            time += 1
            guard !harness.pipeline.outstandingRequests(of: honest).isEmpty else { break }
            let piece = completeNextPiece(&harness, from: honest, at: .seconds(time))
            guard harness.pipeline.picker.state(of: piece) == .awaitingHash else { continue }
            if piece == wronglyRejected {
                reports.append(
                    harness.pipeline.pieceHashFailed(piece, at: .seconds(time), into: &harness.actions))
            } else {
                harness.pipeline.pieceHashPassed(piece, at: .seconds(time), into: &harness.actions)
            }
        }
        #expect(reports.count == 10)
        #expect(reports.map(\.isLikelyLocalFault) == [false] + Array(repeating: true, count: 9))
        #expect(reports.allSatisfy { $0.contributors == [honest] && $0.peersToBan.isEmpty })
        #expect(harness.pipeline.hashFailures(of: honest) == 1)
        #expect(!harness.pipeline.isBanned(honest))
        #expect(
            harness.pipeline.outstandingRequests(of: honest).contains { $0.piece == wronglyRejected },
            "it is still asked for")
    }

    /// Two peers each send the whole piece and both fail: the first is charged; the second is not, as it
    /// sent good data of another piece (a peer that never sent anything good gets no benefit of the doubt).
    @Test(arguments: [true, false])
    func theSecondPeerToFailThePieceIsNotChargedIfItSentGoodData(sentGoodData: Bool) {
        // With two pieces the other one, left half requested by the first peer, is taken first.
        var harness = PipelineHarness(pieceCount: sentGoodData ? 2 : 1, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(honest)
        let piece = completeNextPiece(&harness, from: honest, at: .seconds(1))
        let first = harness.pipeline.pieceHashFailed(piece, at: .seconds(1), into: &harness.actions)
        #expect(!first.isLikelyLocalFault)
        #expect(harness.pipeline.hashFailures(of: honest) == 1)

        harness.pipeline.peerDisconnected(honest)
        harness.connectUnchokingSeed(other, at: .seconds(2))
        if sentGoodData {
            let good = completeNextPiece(&harness, from: other, at: .seconds(2))
            #expect(good != piece)
            harness.pipeline.pieceHashPassed(good, at: .seconds(2), into: &harness.actions)
        }
        #expect(completeNextPiece(&harness, from: other, at: .seconds(2)) == piece)
        let second = harness.pipeline.pieceHashFailed(piece, at: .seconds(2), into: &harness.actions)
        #expect(second.contributors == [other])
        #expect(second.isLikelyLocalFault == sentGoodData)
        #expect(harness.pipeline.hashFailures(of: other) == (sentGoodData ? 0 : 1))
    }

    /// A piece the caller could not check at all (no hash known) charges nobody, even the first time.
    @Test func aPieceWithoutAHashChargesNobody() {
        var configuration = RequestPipeline.Configuration()
        configuration.banAfterHashFailures = 1
        var harness = PipelineHarness(pieceCount: 2, pieceLength: 32 * 1024, configuration: configuration)
        harness.connectUnchokingSeed(honest)
        let piece = completeNextPiece(&harness, from: honest, at: .seconds(1))
        let report = harness.pipeline.pieceHashFailed(
            piece, at: .seconds(1), isLocalFault: true, into: &harness.actions)
        #expect(report.isLikelyLocalFault)
        #expect(report.peersToBan.isEmpty)
        #expect(harness.pipeline.hashFailures(of: honest) == 0)
    }

    /// A liar corrupting distinct pieces after one good one is still banned: each piece fails once, so
    /// each is charged. (Without the good piece, its first failure would get it banned at once.)
    @Test func aLiarCorruptingManyPiecesIsStillBanned() {
        var harness = PipelineHarness(pieceCount: 8, pieceLength: 32 * 1024)
        let liar = PeerSlot(5)
        harness.connectUnchokingSeed(liar)
        let good = completeNextPiece(&harness, from: liar, at: .seconds(0))
        harness.pipeline.pieceHashPassed(good, at: .seconds(0), into: &harness.actions)
        var failed: Set<PieceIndex> = []
        var banned: [PeerSlot] = []
        var time = 0.0
        while banned.isEmpty && time < 20 {
            time += 1
            let piece = completeNextPiece(&harness, from: liar, at: .seconds(time))
            guard harness.pipeline.picker.state(of: piece) == .awaitingHash else { continue }
            failed.insert(piece)
            banned =
                harness.pipeline.pieceHashFailed(piece, at: .seconds(time), into: &harness.actions).peersToBan
        }
        #expect(banned == [liar])
        #expect(failed.count == 3)
    }
}
