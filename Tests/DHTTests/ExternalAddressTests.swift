import Testing
import TorrentModel

@testable import DHT

/// BEP 42: learning our external address from answers' `ip`, and taking a conforming id for it.
@Suite struct ExternalAddressTests {
    static let ours = DHTIPAddress.v4(0x5b00_0007)
    static let lie = DHTIPAddress.v4(0x0606_0606)

    /// A public voter in /24 number `n`.
    static func voter(_ n: Int) -> DHTIPAddress { .v4(0x2a00_0001 | UInt32(n) << 8) }

    @Test func anAddressNeedsFourAgreeingSubnets() {
        var votes = ExternalAddressVotes()
        for n in 0..<3 { votes.record(Self.ours, from: Self.voter(n)) }
        // A second answer from a subnet that already voted adds nothing.
        votes.record(Self.ours, from: .v4(0x2a00_0002))
        #expect(votes.decided == nil)
        votes.record(Self.ours, from: Self.voter(3))
        #expect(votes.decided == Self.ours)
    }

    /// The /64s of one IPv6 /48 are one voter: its holder cannot outvote the rest.
    @Test func anIPv6SiteVotesOnce() {
        var votes = ExternalAddressVotes()
        let ours = DHTIPAddress.v6(high: 0x2001_0db8_0001_0002, low: 7)
        for n in 0..<3 {
            votes.record(ours, from: .v6(high: 0x2a00_0000_0000_0000 | UInt64(n) << 16, low: 1))
        }
        for n in 0..<10 {
            votes.record(
                .v6(high: 0x2001_0db8_0666_0000, low: 6),
                from: .v6(high: 0x2a01_0000_0005_0000 | UInt64(n), low: 1))
        }
        #expect(votes.decided == nil, "three sites for ours, one for the lie")
        votes.record(ours, from: .v6(high: 0x2a00_0000_0003_0000, low: 1))
        #expect(votes.decided == ours)
    }

    @Test func aLyingMinorityIsOutvotedAndATieDecidesNothing() {
        var votes = ExternalAddressVotes()
        for n in 0..<4 { votes.record(Self.lie, from: Self.voter(100 + n)) }
        for n in 0..<4 { votes.record(Self.ours, from: Self.voter(n)) }
        #expect(votes.decided == nil)
        votes.record(Self.ours, from: Self.voter(4))
        #expect(votes.decided == Self.ours)
    }

    @Test func aNewAddressWinsOnceVotersMoveToIt() {
        var votes = ExternalAddressVotes()
        for n in 0..<ExternalAddressVotes.maxVoters { votes.record(Self.ours, from: Self.voter(n)) }
        let moved = DHTIPAddress.v4(0x5b00_0108)
        // The same voters now see the new address; each replaces its old vote.
        let half = ExternalAddressVotes.maxVoters / 2
        for n in 0..<(half - 1) { votes.record(moved, from: Self.voter(n)) }
        #expect(votes.decided == Self.ours)
        votes.record(moved, from: Self.voter(half - 1))
        #expect(votes.decided == nil, "a tie")
        votes.record(moved, from: Self.voter(half))
        #expect(votes.decided == moved)
        // New voters push out the oldest votes: memory stays bounded.
        for n in 0..<200 { votes.record(moved, from: Self.voter(1000 + n)) }
        #expect(votes.decided == moved)
    }

    @Test func privateAnswersCountOnlyWithoutPublicOnesAndUnroutableNever() {
        var votes = ExternalAddressVotes()
        let lan = DHTIPAddress.v4(0x0a00_0005)
        for n in 0..<4 { votes.record(.v4(0xe000_0001), from: Self.voter(n)) }
        #expect(votes.decided == nil)
        for n in 0..<4 { votes.record(lan, from: .v4(0x0a00_0000 | UInt32(n + 1) << 8)) }
        #expect(votes.decided == lan)
        votes.record(Self.ours, from: Self.voter(50))
        #expect(votes.decided == nil)
        for n in 51..<54 { votes.record(Self.ours, from: Self.voter(n)) }
        #expect(votes.decided == Self.ours)
    }

    @Test func rebucketingUnderANewIDKeepsTheNodes() {
        var random = SeededRandom(seed: 9)
        var table = RoutingTable(ownID: randomID(&random), options: RoutingTableOptions(), now: .zero)
        for n in 0..<40 {
            _ = table.nodeResponded(
                DHTNodeInfo(id: randomID(&random), endpoint: RoutingTableTests.address(n)), isVerified: true,
                now: .zero)
        }
        let newID: NodeID = randomID(&random)
        let moved = table.rebucketed(ownID: newID, now: .zero)
        #expect(moved.ownID == newID)
        let known = Set(table.allNodes(now: .zero) + table.buckets.flatMap(\.replacements).map(\.info))
        let after = Set(moved.allNodes(now: .zero))
        #expect(after.count >= 16)
        #expect(after.union(moved.buckets.flatMap(\.replacements).map(\.info)).isSubset(of: known))
        for (index, bucket) in moved.buckets.enumerated() {
            #expect(bucket.nodes.allSatisfy { moved.bucketIndex(for: $0.key) == index })
        }
    }

    /// Nodes start with random ids, learn their addresses from each other's answers, take BEP 42 ids,
    /// and lookups still find the true closest nodes; a restart from the saved state keeps the id.
    @Test func nodesLearnTheirAddressesAndTakeConformingIDs() throws {
        let seed: UInt64 = 0x42_0001
        var simulation = SimulationTests.network(seed: seed, count: 60, lossPercent: 2, conformingIDs: false)
        simulation.run(until: simulation.now.advanced(byNanoseconds: 60_000_000_000))
        let nonConforming = simulation.nodes.indices.filter {
            !NodeIDSecurity.isValid(simulation.nodes[$0].id, for: simulation.endpoints[$0].address)
        }
        #expect(nonConforming.isEmpty, "seed \(seed): nodes \(nonConforming) kept non-conforming ids")
        for index in simulation.nodes.indices {
            #expect(simulation.nodes[index].externalAddress == simulation.endpoints[index].address)
        }
        let changes = simulation.events.joined().filter {
            if case .nodeIDChanged = $0.event { return true }
            return false
        }
        #expect(changes.count == simulation.nodes.count, "seed \(seed): each node changes its id once")

        let target: NodeID = randomID(&simulation.random)
        let seeker = 33
        let lookup = try #require(
            simulation.with(seeker) { node, now, output in node.findNode(target, now: now, into: &output) })
        simulation.run(until: simulation.now.advanced(byNanoseconds: 30_000_000_000)) {
            $0.finished(lookup, at: seeker) != nil
        }
        let found = try #require(simulation.finished(lookup, at: seeker)).result.closestNodes.map(\.id)
        let truth = simulation.nodes.indices.filter { $0 != seeker }.map { simulation.nodes[$0].id }
            .sorted { DHTKey($0) ^ DHTKey(target) < DHTKey($1) ^ DHTKey(target) }.prefix(8)
        #expect(found == Array(truth), "seed \(seed)")

        // A restart from the saved state keeps the conforming id: the address has not changed.
        let restarted = 12
        let saved = try DHTSavedState(
            decoding: simulation.nodes[restarted].savedState(now: simulation.now).encoded())
        #expect(saved.id == simulation.nodes[restarted].id)
        simulation.nodes[restarted] = DHTNode(
            id: saved.id, random: SeededRandom(seed: seed), now: simulation.now)
        simulation.with(restarted) { node, now, output in
            node.addSavedNodes(saved.nodes)
            node.bootstrap(now: now, into: &output)
        }
        simulation.run(until: simulation.now.advanced(byNanoseconds: 30_000_000_000))
        #expect(simulation.nodes[restarted].id == saved.id)
        #expect(simulation.nodes[restarted].externalAddress == simulation.endpoints[restarted].address)
    }
}
