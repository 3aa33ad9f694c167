import Testing

@testable import Swarm

/// One peer corrupting every block among two honest seeds, with hash checks that take time as the
/// engine's do (its queue keeps flowing while a piece it sent waits for its check): how many pieces it
/// spoils before it is banned. Issue #16 measured six in the engine.
@Suite struct LiarSimulationTests {
    func liarAmongHonestSeeds(
        seed: UInt64, probationPieces: Int = RequestPipeline.Configuration().probationPieces,
        maximumPiecesAwaitingHash: Int = RequestPipeline.Configuration().maximumPiecesAwaitingHash
    ) -> SwarmSimulation.Result {
        var simulation = SwarmSimulation(
            .init(
                seed: seed, peerCount: 3, seedCount: 2, liarCount: 1, liarCorruptionProbability: 1,
                pieceCount: 200, pieceLength: 32 * 1024, churn: false, probationPieces: probationPieces,
                maximumPiecesAwaitingHash: maximumPiecesAwaitingHash, hashSeconds: 0.5))
        return simulation.run()
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func aLiarSpoilsAtMostTwoPiecesBeforeItIsBanned(seed: UInt64) {
        let result = liarAmongHonestSeeds(seed: seed)
        print("seed \(seed), one liar and two seeds: \(result.summary)")
        #expect(result.finished)
        #expect(result.bannedLiars == result.liars, "the liar is banned")
        #expect(result.bannedHonestPeers.isEmpty)
        #expect(result.hashFailures >= 1 && result.hashFailures <= 2, "\(result.hashFailures) pieces spoiled")
    }

    /// The same swarm with new peers trusted at once: the liar's queue outruns the checks and it spoils
    /// more, so the bound above is probation's doing, not the swarm's shape.
    @Test(arguments: [UInt64(1), 2, 3])
    func withoutProbationTheLiarSpoilsMore(seed: UInt64) {
        let result = liarAmongHonestSeeds(seed: seed, probationPieces: 0, maximumPiecesAwaitingHash: 0)
        print("seed \(seed), one liar and two seeds, no probation: \(result.summary)")
        #expect(result.finished)
        #expect(result.bannedLiars == result.liars)
        #expect(result.hashFailures > 2, "\(result.hashFailures) pieces spoiled")
    }
}
