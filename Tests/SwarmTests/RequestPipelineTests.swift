import Testing
import TorrentModel

@testable import Swarm

/// A pipeline plus the actions it emitted, with helpers that play the peers' side.
struct PipelineHarness {
    var pipeline: RequestPipeline
    var actions: [RequestAction] = []

    /// Probation and the awaiting-hash cap are off by default: these tests play peers that never hear a
    /// hash verdict, which those would hold at a few pieces (`probationHoldsANewPeerToTwoPieces` and
    /// `aTrustedPeerGetsNothingNewWhileTooManyOfItsPiecesAwaitTheirCheck` test them).
    init(
        pieceCount: Int, pieceLength: Int = 256 * 1024,
        configuration: RequestPipeline.Configuration = .withoutTrustLimits
    ) {
        let geometry = PieceGeometry(totalLength: Int64(pieceCount * pieceLength), pieceLength: pieceLength)
        pipeline = RequestPipeline(geometry: geometry, seed: 42, configuration: configuration)
    }

    var blockLength: Int { Int(pipeline.picker.geometry.blockLength) }

    /// Connects a seed and lets it unchoke us.
    mutating func connectUnchokingSeed(_ peer: PeerSlot, at now: Instant = .zero) {
        pipeline.peerConnected(peer)
        pipeline.peerHaveAll(peer, into: &actions)
        pipeline.peerUnchokedUs(peer, at: now, into: &actions)
    }

    /// Delivers the oldest block outstanding from `peer`.
    @discardableResult
    mutating func deliverOldest(from peer: PeerSlot, at now: Instant) -> BlockReceipt {
        let block = pipeline.outstandingRequests(of: peer)[0]
        return pipeline.blockReceived(block, from: peer, at: now, into: &actions)
    }

    /// Plays a peer that uploads at `rateBytesPerSecond` with no latency for `seconds`.
    mutating func stream(from peer: PeerSlot, rateBytesPerSecond: Double, seconds: Double) {
        let interval = Double(blockLength) / rateBytesPerSecond
        var time = interval
        while time <= seconds {
            deliverOldest(from: peer, at: .seconds(time))
            time += interval
        }
    }

    func requests(to peer: PeerSlot) -> [BlockRange] {
        actions.compactMap { if case .request(peer, let block) = $0 { block } else { nil } }
    }

    func cancels(to peer: PeerSlot) -> [BlockRange] {
        actions.compactMap { if case .cancel(peer, let block) = $0 { block } else { nil } }
    }
}

extension RequestPipeline.Configuration {
    static var withoutTrustLimits: Self {
        var configuration = Self()
        configuration.probationPieces = 0
        configuration.maximumPiecesAwaitingHash = 0
        return configuration
    }
}

@Suite struct RequestPipelineTests {
    let fast = PeerSlot(1)
    let other = PeerSlot(2)

    @Test func aNewPeerStartsAtTheFloor() {
        var harness = PipelineHarness(pieceCount: 16)
        harness.connectUnchokingSeed(fast)
        #expect(harness.requests(to: fast).count == 4)
        #expect(harness.pipeline.targetQueueLength(for: fast, at: .zero) == 4)
    }

    @Test(arguments: [256 * 1024.0, 1024 * 1024.0, 2 * 1024 * 1024.0])
    func queueHoldsThreeSecondsOfTheMeasuredRate(rateBytesPerSecond: Double) {
        var harness = PipelineHarness(pieceCount: 256)
        harness.connectUnchokingSeed(fast)
        harness.pipeline.peerAdvertisedRequestQueue(fast, length: 500)
        harness.stream(from: fast, rateBytesPerSecond: rateBytesPerSecond, seconds: 6)
        let expected = rateBytesPerSecond * 3 / Double(harness.blockLength)
        let target = harness.pipeline.targetQueueLength(for: fast, at: .seconds(6))
        #expect(abs(Double(target) - expected) <= expected * 0.1, "target \(target), expected ~\(expected)")
        #expect(!harness.pipeline.outstandingRequests(of: fast).isEmpty)
    }

    @Test func queueIsCappedAndRespectsTheAdvertisedReqq() {
        var harness = PipelineHarness(pieceCount: 256)
        harness.connectUnchokingSeed(fast)
        harness.pipeline.peerAdvertisedRequestQueue(fast, length: 100_000)
        harness.stream(from: fast, rateBytesPerSecond: 16 * 1024 * 1024, seconds: 2)
        #expect(harness.pipeline.targetQueueLength(for: fast, at: .seconds(2)) == 500)
        harness.pipeline.peerAdvertisedRequestQueue(fast, length: 20)
        #expect(harness.pipeline.targetQueueLength(for: fast, at: .seconds(2)) == 20)
        harness.pipeline.peerAdvertisedRequestQueue(fast, length: -5)
        #expect(
            harness.pipeline.targetQueueLength(for: fast, at: .seconds(2)) == 1, "nonsense reqq is clamped")
    }

    @Test func withoutReqqTheAssumedLimitApplies() {
        var harness = PipelineHarness(pieceCount: 256)
        harness.connectUnchokingSeed(fast)
        harness.stream(from: fast, rateBytesPerSecond: 16 * 1024 * 1024, seconds: 2)
        #expect(harness.pipeline.targetQueueLength(for: fast, at: .seconds(2)) == 250)
    }

    @Test func aSilentPeerIsSnubbedAndItsBlocksGoElsewhere() {
        var harness = PipelineHarness(pieceCount: 16)
        harness.connectUnchokingSeed(fast)
        let stuck = harness.pipeline.outstandingRequests(of: fast)
        harness.actions.removeAll()
        harness.pipeline.tick(at: .seconds(14), into: &harness.actions)
        #expect(harness.actions.isEmpty && !harness.pipeline.isSnubbed(fast))
        harness.pipeline.tick(at: .seconds(15), into: &harness.actions)
        #expect(harness.pipeline.isSnubbed(fast))
        #expect(harness.cancels(to: fast) == stuck)
        #expect(harness.pipeline.outstandingRequests(of: fast).count == 1, "a snubbed peer keeps one request")
        // Another peer now gets the other reopened blocks first.
        harness.connectUnchokingSeed(other, at: .seconds(15))
        let reopened = Set(stuck).subtracting(harness.pipeline.outstandingRequests(of: fast))
        #expect(Set(harness.requests(to: other).prefix(3)) == reopened)
        // Data from the snubbed peer rehabilitates it.
        harness.deliverOldest(from: fast, at: .seconds(16))
        #expect(!harness.pipeline.isSnubbed(fast))
        let target = harness.pipeline.targetQueueLength(for: fast, at: .seconds(16))
        #expect(target >= 4)
        #expect(harness.pipeline.outstandingRequests(of: fast).count == target)
    }

    /// Endgame, one block left, asked of three silent peers (three requesters at most): once they are
    /// snubbed, the peer that delivers gets it before they can take it back, at every tick.
    @Test func theLastBlockGoesToAPeerThatDeliversBeforeSnubbedOnes() {
        var harness = PipelineHarness(pieceCount: 1, pieceLength: 16 * 1024)
        let silent = [PeerSlot(1), PeerSlot(2), PeerSlot(3)]
        for peer in silent { harness.connectUnchokingSeed(peer) }
        #expect(silent.allSatisfy { harness.pipeline.outstandingRequests(of: $0).count == 1 })
        let honest = PeerSlot(4)
        harness.connectUnchokingSeed(honest, at: .seconds(1))
        #expect(harness.pipeline.outstandingRequests(of: honest).isEmpty, "three requesters already")
        harness.pipeline.tick(at: .seconds(15), into: &harness.actions)
        #expect(silent.allSatisfy { harness.pipeline.isSnubbed($0) })
        #expect(harness.pipeline.outstandingRequests(of: honest).count == 1)
    }

    @Test func chokeReturnsRequestsWithoutCancels() {
        var harness = PipelineHarness(pieceCount: 16)
        harness.connectUnchokingSeed(fast)
        let lost = harness.pipeline.outstandingRequests(of: fast)
        harness.pipeline.peerChokedUs(fast)
        #expect(harness.pipeline.outstandingRequests(of: fast).isEmpty)
        #expect(harness.cancels(to: fast).isEmpty, "BEP 3: a choke already discards our requests")
        #expect(lost.allSatisfy { harness.pipeline.picker.blockState(of: $0) == .open })
        harness.pipeline.fillRequests(for: fast, at: .seconds(1), into: &harness.actions)
        #expect(harness.requests(to: fast).count == 4, "no requests while choked")
        harness.connectUnchokingSeed(other)
        #expect(harness.requests(to: other) == lost)
    }

    @Test func departureReturnsRequestsAndAvailability() {
        var harness = PipelineHarness(pieceCount: 16)
        harness.pipeline.peerConnected(fast)
        var some = PieceSet(pieceCount: 16)
        some.insert(PieceIndex(3))
        some.insert(PieceIndex(4))
        harness.pipeline.peerBitfield(fast, some, into: &harness.actions)
        harness.pipeline.peerHave(fast, PieceIndex(5), into: &harness.actions)
        #expect(harness.pipeline.picker.availability(of: PieceIndex(5)) == 1)
        harness.pipeline.peerUnchokedUs(fast, at: .zero, into: &harness.actions)
        let lost = harness.pipeline.outstandingRequests(of: fast)
        #expect(lost.count == 4)
        harness.pipeline.peerDisconnected(fast)
        #expect(lost.allSatisfy { harness.pipeline.picker.blockState(of: $0) == .open })
        #expect((3...5).allSatisfy { harness.pipeline.picker.availability(of: PieceIndex($0)) == 0 })
        #expect(!harness.pipeline.isConnected(fast))
    }

    @Test func endgameDuplicatesAreCancelledAndTheSecondCopyIsRejected() {
        var harness = PipelineHarness(pieceCount: 1, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(fast)
        harness.connectUnchokingSeed(other)
        let blocks = harness.requests(to: fast)
        #expect(blocks.count == 2)
        #expect(harness.requests(to: other) == blocks, "endgame: the slow peer's blocks are duplicated")
        #expect(
            harness.pipeline.blockReceived(blocks[0], from: other, at: .seconds(1), into: &harness.actions)
                == .accepted(pieceComplete: false))
        #expect(harness.cancels(to: fast) == [blocks[0]])
        #expect(harness.pipeline.outstandingRequests(of: fast) == [blocks[1]])
        #expect(
            harness.pipeline.blockReceived(blocks[0], from: fast, at: .seconds(1), into: &harness.actions)
                == .duplicate)
        #expect(
            harness.pipeline.blockReceived(blocks[1], from: fast, at: .seconds(1), into: &harness.actions)
                == .accepted(pieceComplete: true))
        #expect(harness.cancels(to: other) == [blocks[1]])
        #expect(harness.pipeline.outstandingRequests(of: other).isEmpty)
    }

    /// A peer with one good piece to its name: charged for each failure, banned at the third.
    @Test func aPeerWhosePiecesFailIsBanned() {
        var harness = PipelineHarness(pieceCount: 8, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(fast)
        let good = harness.pipeline.outstandingRequests(of: fast)[0].piece
        harness.deliverOldest(from: fast, at: .zero)
        harness.deliverOldest(from: fast, at: .zero)
        harness.pipeline.pieceHashPassed(good, at: .zero, into: &harness.actions)
        var reports: [HashFailureReport] = []
        for round in 1...3 {
            let time = Instant.seconds(Double(round))
            harness.deliverOldest(from: fast, at: time)
            let piece = harness.pipeline.outstandingRequests(of: fast)[0].piece
            #expect(harness.deliverOldest(from: fast, at: time) == .accepted(pieceComplete: true))
            reports.append(harness.pipeline.pieceHashFailed(piece, at: time, into: &harness.actions))
            #expect(harness.pipeline.picker.state(of: piece) == .missing)
        }
        #expect(reports.map(\.contributors) == [[fast], [fast], [fast]])
        #expect(reports.map(\.peersToBan) == [[], [], [fast]])
        #expect(harness.pipeline.hashFailures(of: fast) == 3)
        #expect(harness.pipeline.isBanned(fast))
        #expect(harness.pipeline.outstandingRequests(of: fast).isEmpty, "a banned peer gets no requests")
    }

    @Test func goodPiecesOutweighAFewSharedFailures() {
        var harness = PipelineHarness(pieceCount: 32, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(fast)
        var time = 0.0
        func completePiece(_ harness: inout PipelineHarness) -> PieceIndex {
            time += 1
            harness.deliverOldest(from: fast, at: .seconds(time))
            let piece = harness.pipeline.outstandingRequests(of: fast)[0].piece
            #expect(harness.deliverOldest(from: fast, at: .seconds(time)) == .accepted(pieceComplete: true))
            return piece
        }
        for _ in 0..<12 {
            let piece = completePiece(&harness)
            harness.pipeline.pieceHashPassed(piece, at: .seconds(time), into: &harness.actions)
        }
        for _ in 0..<3 {
            let report = harness.pipeline.pieceHashFailed(
                completePiece(&harness), at: .seconds(time), into: &harness.actions)
            #expect(report.peersToBan.isEmpty)
        }
        let fourth = harness.pipeline.pieceHashFailed(
            completePiece(&harness), at: .seconds(time), into: &harness.actions)
        // 3 failed pieces of 2 blocks against 12 good ones is 20 % suspect; the fourth makes it 25 %.
        #expect(fourth.peersToBan == [fast])
    }

    @Test func aPeerProvenCorruptByDigestsIsBannedAndNoOneElseIsCharged() {
        var harness = PipelineHarness(pieceCount: 1, pieceLength: 32 * 1024)
        let liar = PeerSlot(3)
        harness.connectUnchokingSeed(fast)
        harness.connectUnchokingSeed(liar)
        let blocks = harness.requests(to: fast)
        var actions: [RequestAction] = []  // apart from `harness`: the closure may not access it twice
        var time = 1.0
        func receive(_ index: Int, from peer: PeerSlot) -> BlockReceipt {
            harness.pipeline.blockReceived(blocks[index], from: peer, at: .seconds(time), into: &actions)
        }
        _ = receive(0, from: fast)
        #expect(receive(1, from: liar) == .accepted(pieceComplete: true))
        let failure = harness.pipeline.pieceHashFailed(
            PieceIndex(0), blockDigests: [100, 666], at: .seconds(time), into: &actions)
        #expect(failure.contributors == [fast, liar])
        #expect(failure.peersToBan.isEmpty, "digests will tell; nobody is charged on suspicion")
        #expect(harness.pipeline.isSuspect(fast) && harness.pipeline.isSuspect(liar))
        // Neither ever sent a good block: both sit out their suspicion, then are asked again.
        #expect(harness.pipeline.outstandingRequests(of: fast).isEmpty)
        #expect(harness.pipeline.outstandingRequests(of: liar).isEmpty)
        time = 17
        harness.pipeline.tick(at: .seconds(time), into: &actions)
        #expect(!harness.pipeline.isSuspect(fast) && !harness.pipeline.isSuspect(liar))
        #expect(Set(harness.pipeline.outstandingRequests(of: fast)) == Set(blocks))
        _ = receive(0, from: fast)
        _ = receive(1, from: fast)
        #expect(harness.pipeline.needsBlockDigests(toPass: PieceIndex(0)))
        let banned = harness.pipeline.pieceHashPassed(
            PieceIndex(0), blockDigests: [100, 200], at: .seconds(time), into: &actions)
        #expect(banned == [liar])
        #expect(harness.pipeline.isBanned(liar) && !harness.pipeline.isBanned(fast))
        #expect(!harness.pipeline.isSuspect(fast), "the pass clears whoever sent good blocks")
    }

    /// Trust is earned: a new peer gets two pieces' worth of requests, none more while one of them is
    /// being checked, and a full queue once a piece it sent passes.
    /// A peer none of whose pieces has passed leaves after sending half a piece: its block is open
    /// again, to be fetched anew, not left to fail the piece on whoever sends the rest.
    @Test func anUnprovenPeerThatLeavesTakesItsBlocksAlong() {
        var harness = PipelineHarness(
            pieceCount: 64, pieceLength: 32 * 1024, configuration: RequestPipeline.Configuration())
        harness.connectUnchokingSeed(fast)
        let sent = harness.pipeline.outstandingRequests(of: fast)[0]
        harness.deliverOldest(from: fast, at: .seconds(1))
        #expect(harness.pipeline.picker.blockState(of: sent) == .received)
        harness.pipeline.peerDisconnected(fast)
        #expect(harness.pipeline.picker.blockState(of: sent) == .open)
    }

    @Test func probationHoldsANewPeerToTwoPieces() {
        var harness = PipelineHarness(
            pieceCount: 64, pieceLength: 32 * 1024, configuration: RequestPipeline.Configuration())
        harness.connectUnchokingSeed(fast)
        harness.pipeline.peerAdvertisedRequestQueue(fast, length: 500)
        #expect(harness.pipeline.outstandingRequests(of: fast).count == 4, "two pieces of two blocks")
        let first = harness.pipeline.outstandingRequests(of: fast)[0]
        var actions: [RequestAction] = []
        for block in harness.pipeline.outstandingRequests(of: fast) where block.piece == first.piece {
            _ = harness.pipeline.blockReceived(block, from: fast, at: .seconds(1), into: &actions)
        }
        #expect(harness.pipeline.picker.state(of: first.piece) == .awaitingHash)
        // Topped up to four after the first block; nothing new after the second, while the piece is checked.
        #expect(harness.pipeline.outstandingRequests(of: fast).count == 3, "nothing new while it is checked")
        harness.pipeline.pieceHashPassed(first.piece, at: .seconds(1), into: &actions)
        #expect(
            harness.pipeline.outstandingRequests(of: fast).count > 4, "trusted: the queue follows the rate")
    }

    /// A liar among honest peers, after a piece it sent passed: once a piece it sent fails, it gets
    /// nothing while an honest peer can serve, its blocks in unfinished pieces are fetched again, and the
    /// pass of the spoiled piece from an honest peer proves it lied.
    @Test func aSuspectSitsOutWhileAnHonestPeerServesAndIsConvictedByThePass() {
        var harness = PipelineHarness(pieceCount: 64, pieceLength: 32 * 1024)
        let liar = PeerSlot(3)
        harness.connectUnchokingSeed(liar)
        var actions: [RequestAction] = []
        let good = harness.pipeline.outstandingRequests(of: liar)[0].piece
        for block in harness.pipeline.outstandingRequests(of: liar) where block.piece == good {
            _ = harness.pipeline.blockReceived(block, from: liar, at: .seconds(1), into: &actions)
        }
        harness.pipeline.pieceHashPassed(good, at: .seconds(1), into: &actions)
        let requested = harness.pipeline.outstandingRequests(of: liar)
        let spoiled = requested[0].piece
        for block in requested where block.piece == spoiled {
            _ = harness.pipeline.blockReceived(block, from: liar, at: .seconds(1), into: &actions)
        }
        // One block of another piece arrives too, then the honest peer connects.
        let other = requested.first { $0.piece != spoiled }!
        _ = harness.pipeline.blockReceived(other, from: liar, at: .seconds(1), into: &actions)
        harness.connectUnchokingSeed(fast, at: .seconds(1))
        _ = harness.pipeline.pieceHashFailed(spoiled, blockDigests: [6, 66], at: .seconds(1), into: &actions)
        #expect(harness.pipeline.isSuspect(liar))
        #expect(harness.pipeline.outstandingRequests(of: liar).isEmpty)
        #expect(
            harness.pipeline.picker.blockState(of: other) != .received, "its unchecked block is refetched")
        // Late answers to its cancelled requests are refused.
        #expect(
            harness.pipeline.blockReceived(requested.last!, from: liar, at: .seconds(1), into: &actions)
                == .unexpected)
        harness.pipeline.tick(at: .seconds(2), into: &actions)
        #expect(harness.pipeline.outstandingRequests(of: liar).isEmpty, "an honest peer serves instead")
        // The honest peer serves until the spoiled piece is in; the other pieces it completes pass.
        var time = 2.0
        while harness.pipeline.picker.state(of: spoiled) != .awaitingHash && time < 30 {
            for block in harness.pipeline.outstandingRequests(of: fast)
            where harness.pipeline.picker.state(of: spoiled) != .awaitingHash {
                let receipt = harness.pipeline.blockReceived(
                    block, from: fast, at: .seconds(time), into: &actions)
                if receipt == .accepted(pieceComplete: true) && block.piece != spoiled {
                    harness.pipeline.pieceHashPassed(block.piece, at: .seconds(time), into: &actions)
                }
            }
            #expect(harness.pipeline.outstandingRequests(of: liar).isEmpty)
            time += 1
        }
        #expect(harness.pipeline.needsBlockDigests(toPass: spoiled))
        let banned = harness.pipeline.pieceHashPassed(
            spoiled, blockDigests: [1, 2], at: .seconds(time), into: &actions)
        #expect(banned == [liar])
    }

    /// A peer that alone sent every block of a failed piece, with nothing it sent passed yet, is banned
    /// on that failure, digests or not: nobody shares the blame, so waiting for a pass to convict it
    /// would only let it spoil more. Its unchecked blocks of other pieces are fetched again.
    @Test(arguments: [true, false])
    func aPeerThatAloneSentAFailedPieceBeforeAnyPassedIsBannedAtOnce(withDigests: Bool) {
        var harness = PipelineHarness(pieceCount: 64, pieceLength: 32 * 1024)
        let liar = PeerSlot(3)
        harness.connectUnchokingSeed(liar)
        harness.connectUnchokingSeed(fast)
        var actions: [RequestAction] = []
        let requested = harness.pipeline.outstandingRequests(of: liar)
        let spoiled = requested[0].piece
        for block in requested where block.piece == spoiled {
            _ = harness.pipeline.blockReceived(block, from: liar, at: .seconds(1), into: &actions)
        }
        let unfinished = requested.first { $0.piece != spoiled }!
        _ = harness.pipeline.blockReceived(unfinished, from: liar, at: .seconds(1), into: &actions)
        let report = harness.pipeline.pieceHashFailed(
            spoiled, blockDigests: withDigests ? [6, 66] : nil, at: .seconds(1), into: &actions)
        #expect(report.contributors == [liar] && report.peersToBan == [liar])
        #expect(harness.pipeline.isBanned(liar) && !harness.pipeline.isBanned(fast))
        #expect(harness.pipeline.outstandingRequests(of: liar).isEmpty)
        #expect(
            harness.pipeline.picker.blockState(of: unfinished) != .received,
            "its unchecked block is refetched")
    }

    /// Sharing the piece spares a peer the instant ban: the other sender may be the liar.
    @Test func aPeerThatSharedAFailedPieceIsNotBannedAtOnce() {
        var harness = PipelineHarness(pieceCount: 1, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(fast)
        harness.connectUnchokingSeed(other)
        let blocks = harness.requests(to: fast)
        var actions: [RequestAction] = []
        _ = harness.pipeline.blockReceived(blocks[0], from: fast, at: .seconds(1), into: &actions)
        _ = harness.pipeline.blockReceived(blocks[1], from: other, at: .seconds(1), into: &actions)
        let report = harness.pipeline.pieceHashFailed(
            PieceIndex(0), blockDigests: [6, 66], at: .seconds(1), into: &actions)
        #expect(report.contributors == [fast, other] && report.peersToBan.isEmpty)
    }

    /// A peer out of probation gets nothing new while `maximumPiecesAwaitingHash` of the pieces it sent
    /// wait for their check (a liar that earned trust spoils no more than those), and is asked again as
    /// soon as one passes.
    @Test func aTrustedPeerGetsNothingNewWhileTooManyOfItsPiecesAwaitTheirCheck() {
        var configuration = RequestPipeline.Configuration.withoutTrustLimits
        configuration.maximumPiecesAwaitingHash = 2
        configuration.minimumBytesAwaitingHash = 0
        var harness = PipelineHarness(pieceCount: 64, pieceLength: 32 * 1024, configuration: configuration)
        harness.connectUnchokingSeed(fast)
        var completed: [PieceIndex] = []
        var time = 1.0
        while completed.count < 2 {
            let block = harness.pipeline.outstandingRequests(of: fast)[0]
            if harness.deliverOldest(from: fast, at: .seconds(time)) == .accepted(pieceComplete: true) {
                completed.append(block.piece)
            }
            time += 0.01
        }
        let heldQueueLength = harness.pipeline.outstandingRequests(of: fast).count
        harness.actions.removeAll()
        harness.deliverOldest(from: fast, at: .seconds(time))
        #expect(harness.requests(to: fast).isEmpty, "nothing new at the cap")
        #expect(harness.pipeline.outstandingRequests(of: fast).count == heldQueueLength - 1)
        harness.pipeline.pieceHashPassed(completed[0], at: .seconds(time), into: &harness.actions)
        #expect(!harness.requests(to: fast).isEmpty, "asked again once one passes")
    }

    /// Small pieces are checked one by one: the cap holds at least `minimumBytesAwaitingHash` of them,
    /// so a fast peer's queue never waits on the hashing workers' round trips.
    @Test func theCapOnPiecesAwaitingTheirCheckCountsBytesForSmallPieces() {
        var configuration = RequestPipeline.Configuration.withoutTrustLimits
        configuration.maximumPiecesAwaitingHash = 4
        configuration.minimumBytesAwaitingHash = 256 * 1024
        var harness = PipelineHarness(pieceCount: 256, pieceLength: 16 * 1024, configuration: configuration)
        #expect(harness.pipeline.piecesAwaitingHashLimit == 16)
        harness.connectUnchokingSeed(fast)
        var completed = 0
        var time = 1.0
        while completed < 14 {
            if harness.deliverOldest(from: fast, at: .seconds(time)) == .accepted(pieceComplete: true) {
                completed += 1
            }
            time += 0.01
        }
        // The fifteenth piece unchecked (far past the four a piece count alone allows): still asked.
        harness.actions.removeAll()
        harness.deliverOldest(from: fast, at: .seconds(time))
        #expect(!harness.requests(to: fast).isEmpty, "asked again below the cap")
        // The sixteenth: 256 KiB await their check, the cap.
        harness.actions.removeAll()
        harness.deliverOldest(from: fast, at: .seconds(time))
        #expect(harness.requests(to: fast).isEmpty, "nothing new at sixteen")
    }

    @Test func interestIsAnnouncedWhenItChanges() {
        var harness = PipelineHarness(pieceCount: 2, pieceLength: 16 * 1024)
        harness.pipeline.peerConnected(fast)
        harness.pipeline.peerConnected(other)
        var one = PieceSet(pieceCount: 2)
        one.insert(PieceIndex(1))
        harness.pipeline.peerBitfield(fast, one, into: &harness.actions)
        harness.pipeline.peerHaveAll(other, into: &harness.actions)
        #expect(harness.actions == [.interested(fast), .interested(other)])
        harness.actions.removeAll()
        // Once piece 1 is ours, `fast` has nothing more for us; `other` still has piece 0.
        harness.pipeline.peerUnchokedUs(fast, at: .zero, into: &harness.actions)
        let block = try! #require(harness.requests(to: fast).first)
        #expect(
            harness.pipeline.blockReceived(block, from: fast, at: .zero, into: &harness.actions)
                == .accepted(pieceComplete: true))
        harness.actions.removeAll()
        harness.pipeline.pieceHashPassed(block.piece, at: .zero, into: &harness.actions)
        #expect(harness.actions == [.notInterested(fast)])
        harness.actions.removeAll()
        harness.pipeline.setPriority(.skip, of: PieceIndex(0), into: &harness.actions)
        #expect(harness.actions == [.notInterested(other)])
        harness.actions.removeAll()
        harness.pipeline.setPriority(.normal, of: PieceIndex(0), into: &harness.actions)
        #expect(harness.actions == [.interested(other)])
    }

    @Test func interestFollowsWhatThePeerHas() {
        var harness = PipelineHarness(pieceCount: 4)
        harness.pipeline.peerConnected(fast)
        #expect(!harness.pipeline.isInterested(in: fast))
        harness.pipeline.peerHave(fast, PieceIndex(2), into: &harness.actions)
        #expect(harness.pipeline.isInterested(in: fast))
        harness.pipeline.setPriority(.skip, of: PieceIndex(2), into: &harness.actions)
        #expect(!harness.pipeline.isInterested(in: fast))
        let accepted = harness.pipeline.peerBitfield(fast, PieceSet(pieceCount: 5), into: &harness.actions)
        #expect(!accepted, "a bitfield of the wrong size")
        let inRange = harness.pipeline.peerHave(fast, PieceIndex(4), into: &harness.actions)
        #expect(!inRange, "a HAVE past the last piece")
    }

    @Test func unsolicitedJunkIsNotProgress() {
        var harness = PipelineHarness(pieceCount: 16)
        harness.connectUnchokingSeed(fast)
        let junk = BlockRange(piece: PieceIndex(15), offset: 3, length: 16384)
        for tenth in 1...50 {
            let receipt = harness.pipeline.blockReceived(
                junk, from: fast, at: .seconds(Double(tenth) / 10), into: &harness.actions)
            #expect(receipt == .unexpected)
        }
        #expect(harness.pipeline.downloadRateBytesPerSecond(of: fast, at: .seconds(5)) == 0)
        harness.pipeline.tick(at: .seconds(15), into: &harness.actions)
        #expect(harness.pipeline.isSnubbed(fast), "junk does not count as the data we wait for")
    }

    @Test func aReusedSlotStartsClean() {
        var harness = PipelineHarness(pieceCount: 1, pieceLength: 32 * 1024)
        harness.connectUnchokingSeed(fast)
        let piece = harness.pipeline.outstandingRequests(of: fast)[0].piece
        harness.deliverOldest(from: fast, at: .seconds(1))
        harness.pipeline.peerDisconnected(fast)
        harness.pipeline.peerConnected(fast)
        #expect(harness.pipeline.picker.seedCount == 0)
        #expect(harness.pipeline.outstandingRequests(of: fast).isEmpty)
        #expect(harness.pipeline.downloadRateBytesPerSecond(of: fast, at: .seconds(1)) == 0)
        #expect(harness.pipeline.targetQueueLength(for: fast, at: .seconds(1)) == 4)
        // The block the old peer sent is no longer credited to the slot: the piece names no contributor.
        let other = PeerSlot(9)
        harness.connectUnchokingSeed(other, at: .seconds(2))
        let rest = try! #require(harness.pipeline.outstandingRequests(of: other).first { $0.piece == piece })
        _ = harness.pipeline.blockReceived(rest, from: other, at: .seconds(3), into: &harness.actions)
        #expect(harness.pipeline.picker.state(of: piece) == .awaitingHash)
        let verdict = harness.pipeline.pieceHashFailed(piece, at: .seconds(3), into: &harness.actions)
        #expect(verdict.contributors == [other])
    }

    @Test func aPeerCompletingViaHavesBecomesASeed() {
        var harness = PipelineHarness(pieceCount: 3)
        harness.pipeline.peerConnected(fast)
        for piece in 0..<3 { harness.pipeline.peerHave(fast, PieceIndex(piece), into: &harness.actions) }
        harness.pipeline.peerHave(fast, PieceIndex(1), into: &harness.actions)
        #expect(harness.pipeline.picker.seedCount == 1)
        #expect(harness.pipeline.picker.availability(of: PieceIndex(1)) == 1)
        harness.pipeline.peerDisconnected(fast)
        #expect(harness.pipeline.picker.seedCount == 0)
        #expect(harness.pipeline.picker.availability(of: PieceIndex(1)) == 0)
    }
}
