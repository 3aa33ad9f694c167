import DHTSimulation
import Testing
import TorrentModel

@testable import DHT

/// Whole networks of simulated nodes. Each run replays exactly from its seed, printed on failure.
@Suite struct SimulationTests {
    /// Brings up `count` nodes, each bootstrapping from node 0 a little after the one before.
    static func network(
        seed: UInt64, count: Int, lossPercent: UInt64, conformingIDs: Bool = true
    ) -> DHTSimulation {
        var simulation = DHTSimulation(seed: seed, lossPercent: lossPercent)
        for _ in 0..<count { simulation.addNode(conformingID: conformingIDs) }
        let router = simulation.endpoints[0]
        for index in 1..<count {
            simulation.run(until: simulation.now.advanced(byNanoseconds: 50_000_000))
            simulation.with(index) { node, now, output in
                node.addBootstrapEndpoints([router])
                node.bootstrap(now: now, into: &output)
            }
        }
        simulation.run(until: simulation.now.advanced(byNanoseconds: 30_000_000_000))
        return simulation
    }

    @Test(arguments: [UInt64(0x5eed_0001), 0x5eed_0002, 0x5eed_0003])
    func getPeersFindsAnAnnouncedPeerAmong300Nodes(seed: UInt64) {
        var simulation = Self.network(seed: seed, count: 300, lossPercent: 5)
        // With 5 % loss each way a node can lose all of its first bootstrap round trips (it retries every
        // 15 s); a handful may still be catching up.
        let thinTables = simulation.nodes.indices.filter { simulation.nodes[$0].routingTableNodeCount < 8 }
        #expect(thinTables.count <= 3, "seed \(seed): nodes \(thinTables) have fewer than 8 table nodes")

        let infoHash: InfoHash = randomID(&simulation.random)
        let announcer = 17
        let seeker = 250
        let announce = simulation.with(announcer) { node, now, output in
            node.startAnnouncing(infoHash, port: 7000, now: now, into: &output)
        }
        guard let announce else {
            Issue.record("seed \(seed): the announce did not start")
            return
        }
        simulation.run(until: simulation.now.advanced(byNanoseconds: 60_000_000_000)) {
            $0.finished(announce, at: announcer) != nil
        }
        let announced = simulation.finished(announce, at: announcer)
        #expect((announced?.result.announcedTo ?? 0) >= 4, "seed \(seed): announced to too few nodes")
        // Let the announces arrive.
        simulation.run(until: simulation.now.advanced(byNanoseconds: 2_000_000_000))

        let start = simulation.now
        let lookup = simulation.with(seeker) { node, now, output in
            node.findPeers(for: infoHash, now: now, into: &output)
        }
        guard let lookup else {
            Issue.record("seed \(seed): the lookup did not start")
            return
        }
        simulation.run(until: start.advanced(byNanoseconds: 60_000_000_000)) {
            $0.finished(lookup, at: seeker) != nil
        }
        let expectedPeer = DHTEndpoint(address: simulation.endpoints[announcer].address, port: 7000)
        #expect(
            simulation.peers(found: lookup, at: seeker).contains(expectedPeer), "seed \(seed): peer not found"
        )
        let finished = simulation.finished(lookup, at: seeker)
        #expect(finished != nil, "seed \(seed): the lookup did not finish")
        if let finished {
            let seconds = Double(finished.at.nanoseconds(since: start)) / 1e9
            #expect(seconds < 15, "seed \(seed): the lookup took \(seconds) s")
            #expect(finished.result.closestNodes.count == 8, "seed \(seed)")
            #expect(finished.result.peerCount >= 1, "seed \(seed)")
        }
    }

    /// The same seed gives the same run, datagram for datagram.
    @Test func aRunReplaysFromItsSeed() {
        func summary(seed: UInt64) -> [Int] {
            let simulation = Self.network(seed: seed, count: 40, lossPercent: 10)
            return [simulation.datagramsSent, simulation.datagramsLost]
                + simulation.nodes.map(\.routingTableNodeCount)
                + simulation.nodes.map(\.statistics.queriesSent)
        }
        let first = summary(seed: 42)
        #expect(first == summary(seed: 42), "seed 42")
        #expect(first != summary(seed: 43))
    }
}
