import Testing

@testable import Swarm

@Suite struct SwarmSimulationTests {
    @Test(arguments: [UInt64(1), 2, 3])
    func churningSwarmWithLiarsCompletes(seed: UInt64) {
        var simulation = SwarmSimulation(.init(seed: seed))
        let result = simulation.run()
        print("seed \(seed): \(result.summary)")
        #expect(result.finished, "every piece completes")
        #expect(result.departures > 20 && result.chokes > 40, "a third of the peers left, half choked us")
        #expect(result.blocksAcceptedTwice == 0, "no block is accepted twice")
        #expect(result.bannedLiars == result.liars, "every liar is banned")
        #expect(result.bannedHonestPeers.isEmpty, "no honest peer is banned")
        #expect(result.hashFailures > 0, "the liars were caught by hash failures, not by luck")
        // Through churn, chokes, bans and endgame, some block arrives at least every two seconds.
        #expect(result.longestGapSeconds < 2, "data never stalls")
        #expect(result.endgameSeconds > 0, "the run went through endgame")
    }

    /// Without digests only suspicion is left: every contributor of a failed piece is charged. With four
    /// blocks per piece, liars still stand out and honest peers that shared pieces with them do not; a
    /// liar that touches fewer than three failed pieces before the download ends may go unbanned. (The
    /// engine always has digests; probation, which shifts who shares pieces with whom, is off here.)
    @Test(arguments: [UInt64(1), 2, 3])
    func withoutDigestsLiarsAreBannedOnSuspicion(seed: UInt64) {
        var simulation = SwarmSimulation(
            .init(
                seed: seed, pieceCount: 1200, pieceLength: 64 * 1024, blockDigests: false, probationPieces: 0)
        )
        let result = simulation.run()
        print("seed \(seed) without digests: \(result.summary)")
        #expect(result.finished)
        #expect(result.blocksAcceptedTwice == 0)
        #expect(result.bannedHonestPeers.isEmpty, "no honest peer is banned")
        #expect(result.bannedLiars.count >= 3, "most liars are banned")
    }

    /// The engine caps pieces in progress at its free piece buffers: with a tight cap (16 pieces of 16
    /// blocks among 100 peers), churn and liars the download still completes, never exceeds the cap,
    /// and does not stall; it is slower, since most peers get nothing to do.
    @Test(arguments: [UInt64(1), 2])
    func tightPieceMemoryStillCompletesWithoutStalls(seed: UInt64) {
        var simulation = SwarmSimulation(.init(seed: seed, maximumPiecesInProgress: 16))
        let result = simulation.run()
        print("seed \(seed), 16 pieces in progress at most: \(result.summary)")
        #expect(result.finished)
        #expect(result.mostPiecesInProgress <= 16 && result.mostPiecesInProgress >= 15)
        #expect(result.blocksAcceptedTwice == 0)
        #expect(result.bannedHonestPeers.isEmpty)
        #expect(result.longestGapSeconds < 2, "data never stalls")
    }

    @Test func withoutEndgameTheTailWaitsOnSlowPeers() {
        // Endgame alone: probation (which holds back peers until their first piece passes) is off.
        var withEndgame = SwarmSimulation(.init(seed: 4, liarCount: 0, churn: false, probationPieces: 0))
        var without = SwarmSimulation(
            .init(seed: 4, liarCount: 0, churn: false, maximumRequestersPerBlock: 1, probationPieces: 0))
        let fast = withEndgame.run()
        let slow = without.run()
        print("with endgame: \(fast.summary)\nwithout: \(slow.summary)")
        #expect(fast.finished && slow.finished)
        #expect(slow.cancelsSent == 0 && fast.cancelsSent > 0)
        #expect(fast.completionSeconds < slow.completionSeconds * 0.8)
        // Duplicated requests keep the download at full speed to the last block; without them the tail
        // waits on the slowest peers (a 10 KB/s peer holds its four blocks for six seconds).
        #expect(fast.endgameRateBytesPerSecond > fast.rateBeforeEndgameBytesPerSecond)
        #expect(slow.endgameRateBytesPerSecond < 0.8 * slow.rateBeforeEndgameBytesPerSecond)
    }

    @Test func rarestPiecesAreRequestedFirst() {
        var simulation = SwarmSimulation(.init(seed: 11, peerCount: 200, liarCount: 0, churn: false))
        let result = simulation.run()
        #expect(result.finished)
        let order = result.availabilityInRequestOrder
        let fifth = order.count / 5
        let firstMean = Double(order.prefix(fifth).reduce(0, +)) / Double(fifth)
        let lastMean = Double(order.suffix(fifth).reduce(0, +)) / Double(fifth)
        print("rarest first: first fifth \(firstMean) peers, last fifth \(lastMean) peers")
        #expect(firstMean < lastMean * 0.6, "first fifth \(firstMean) vs last fifth \(lastMean)")
    }

    @Test func sequentialModeRequestsPiecesInOrder() {
        var sequential = SwarmSimulation(.init(seed: 5, liarCount: 0, churn: false, sequential: true))
        var rarestFirst = SwarmSimulation(.init(seed: 5, liarCount: 0, churn: false, sequential: false))
        let inOrder = sequential.run()
        let shuffled = rarestFirst.run()
        #expect(inOrder.finished && shuffled.finished)
        let count = Double(inOrder.requestOrder.count)
        let sequentialDisplacement = meanDisplacement(inOrder.requestOrder) / count
        let rarestDisplacement = meanDisplacement(shuffled.requestOrder) / count
        print("mean displacement: sequential \(sequentialDisplacement), rarest first \(rarestDisplacement)")
        // A peer that lacks the next piece starts a later one, so the order is nearly, not exactly, sorted.
        #expect(sequentialDisplacement < 0.02)
        #expect(rarestDisplacement > 0.2)
    }

    /// The mean distance between each piece's place in `order` and its index.
    private func meanDisplacement(_ order: [Int]) -> Double {
        Double(order.enumerated().map { abs($0.offset - $0.element) }.reduce(0, +)) / Double(order.count)
    }

    @Test func aSeedReplaysExactly() {
        var first = SwarmSimulation(.init(seed: 21, peerCount: 60, pieceCount: 200))
        var second = SwarmSimulation(.init(seed: 21, peerCount: 60, pieceCount: 200))
        var other = SwarmSimulation(.init(seed: 22, peerCount: 60, pieceCount: 200))
        let result = first.run()
        #expect(result.fingerprint == second.run().fingerprint)
        #expect(result.completionSeconds > 0)
        #expect(result.fingerprint != other.run().fingerprint)
    }
}

extension SwarmSimulation.Result {
    var summary: String {
        "finished \(finished) in \(completionSeconds) s, endgame \(endgameSeconds) s, gap \(longestGapSeconds) s, "
            + "rate \(Int(rateBeforeEndgameBytesPerSecond)) B/s, in endgame \(Int(endgameRateBytesPerSecond)) B/s, "
            + "\(hashFailures) hash failures, \(duplicatesRejected) duplicates, \(cancelsSent) cancels, "
            + "\(departures) departures, \(chokes) chokes, "
            + "banned \(bannedLiars.count)/\(liars.count) liars, \(bannedHonestPeers.count) honest"
    }
}
