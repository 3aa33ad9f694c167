import Foundation
import Testing
import TorrentModel

@testable import DHT

/// A large network with churn and loss: lookups must still find the true closest 8 nodes (checked by
/// brute force) and announced peers. Runs only when `DHT_SIMULATION_NODES` gives the node count (see the
/// README's DHT section).
@Suite struct ScaleSimulationTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DHT_SIMULATION_NODES"] != nil))
    func lookupsFindTheTrueClosestNodesUnderChurnAndLoss() throws {
        let count = Int(ProcessInfo.processInfo.environment["DHT_SIMULATION_NODES"] ?? "") ?? 1000
        let seed: UInt64 = 0x5ca1_e001
        var simulation = DHTSimulation(seed: seed, lossPercent: 2, tickNanoseconds: 1_000_000_000)
        for _ in 0..<count { simulation.addNode() }
        let routers = Array(simulation.endpoints[0..<3])
        func join(_ index: Int, _ simulation: inout DHTSimulation) {
            simulation.with(index) { node, now, output in
                node.addBootstrapEndpoints(routers)
                node.bootstrap(now: now, into: &output)
            }
        }
        // Nodes join 50 a second, bootstrapping from three routers.
        for start in stride(from: 0, to: count, by: 50) {
            for index in start..<min(start + 50, count) { join(index, &simulation) }
            simulation.run(until: simulation.now.advanced(byNanoseconds: 1_000_000_000))
        }
        simulation.run(until: simulation.now.advanced(byNanoseconds: 60_000_000_000))
        // Churn: 5 % leave, as many new nodes join.
        var random = SeededRandom(seed: seed)
        for _ in 0..<(count / 20) {
            simulation.removeNode(3 + Int(random.next(upperBound: UInt64(count - 3))))
        }
        for _ in 0..<(count / 20) { join(simulation.addNode(), &simulation) }
        simulation.run(until: simulation.now.advanced(byNanoseconds: 30_000_000_000))

        let alive = simulation.nodes.indices.filter { simulation.isAlive[$0] }
        let lookups = 20
        var converged = 0
        var queries = 0
        var virtualNanoseconds: UInt64 = 0
        for _ in 0..<lookups {
            let target: NodeID = randomID(&random)
            let seeker = alive[Int(random.next(upperBound: UInt64(alive.count)))]
            let queriesBefore = simulation.nodes[seeker].statistics.queriesSent
            let start = simulation.now
            let lookup = try #require(
                simulation.with(seeker) { node, now, output in node.findNode(target, now: now, into: &output)
                })
            simulation.run(until: start.advanced(byNanoseconds: 60_000_000_000)) {
                $0.finished(lookup, at: seeker) != nil
            }
            let finished = try #require(simulation.finished(lookup, at: seeker), "seed \(seed)")
            virtualNanoseconds += finished.at.nanoseconds(since: start)
            queries += simulation.nodes[seeker].statistics.queriesSent - queriesBefore
            let truth = alive.filter { $0 != seeker }.map { simulation.nodes[$0].id }
                .sorted { DHTKey($0) ^ DHTKey(target) < DHTKey($1) ^ DHTKey(target) }.prefix(8)
            let found = finished.result.closestNodes.map(\.id)
            if found == Array(truth) {
                converged += 1
            } else {
                let shared = { (ids: [NodeID]) in
                    ids.map { (DHTKey($0) ^ DHTKey(target)).leadingZeroBitCount }
                }
                print(
                    "dht simulation: a miss: bits shared with the target \(shared(found)), true \(shared(Array(truth)))"
                )
            }
        }
        #expect(
            converged == lookups, "seed \(seed): \(converged) of \(lookups) lookups found the true closest 8")

        let infoHash: InfoHash = randomID(&random)
        let announcer = alive[5]
        let seeker = alive[alive.count - 5]
        let announce = try #require(
            simulation.with(announcer) { node, now, output in
                node.announce(infoHash, port: 7000, now: now, into: &output)
            })
        simulation.run(until: simulation.now.advanced(byNanoseconds: 60_000_000_000)) {
            $0.finished(announce, at: announcer) != nil
        }
        simulation.run(until: simulation.now.advanced(byNanoseconds: 2_000_000_000))
        let search = try #require(
            simulation.with(seeker) { node, now, output in
                node.findPeers(for: infoHash, now: now, into: &output)
            })
        simulation.run(until: simulation.now.advanced(byNanoseconds: 60_000_000_000)) {
            $0.finished(search, at: seeker) != nil
        }
        #expect(
            simulation.peers(found: search, at: seeker).contains(
                DHTEndpoint(address: simulation.endpoints[announcer].address, port: 7000)), "seed \(seed)")
        print(
            "dht simulation: \(count) nodes, \(converged)/\(lookups) lookups exact,",
            "\(Double(queries) / Double(lookups)) queries per lookup,",
            "\(Double(virtualNanoseconds) / Double(lookups) / 1e9) s per lookup (virtual),",
            "\(simulation.datagramsSent) datagrams, \(simulation.datagramsLost) lost")
    }
}
