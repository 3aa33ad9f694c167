import DHTSimulation
import Foundation
import Testing

/// Issue #15's scale scenario (see ``ScaleScenario``) in the test process, for the node count
/// `DHT_SIMULATION_NODES` gives: slow in a debug build, so opt-in. scripts/test runs 10,000 nodes
/// release-built, as `potluck-dht-simulation`.
@Suite struct ScaleSimulationTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DHT_SIMULATION_NODES"] != nil))
    func lookupsFindTheTrueClosestNodesAmongDeadGarbageAndLyingNodes() {
        let count = Int(ProcessInfo.processInfo.environment["DHT_SIMULATION_NODES"] ?? "") ?? 1000
        let scenario = ScaleScenario(nodeCount: count, seed: 0x5ca1_e010)
        let report = scenario.run()
        print("dht simulation: \(report)")
        for failure in scenario.failures(of: report) { Issue.record("seed \(scenario.seed): \(failure)") }
    }
}
