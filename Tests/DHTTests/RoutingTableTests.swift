import Testing
import TorrentModel

@testable import DHT

/// XOR distance and the routing table's invariants, over random ids.
@Suite struct RoutingTableTests {
    static let minute: UInt64 = 60_000_000_000

    /// A distinct public address for node `n` (its own /24).
    static func address(_ n: Int) -> DHTEndpoint {
        DHTEndpoint(address: .v4(0x2a00_0001 | UInt32(n) << 8), port: 6881)
    }

    @Test func xorDistanceOrdersLikeTheBytes() {
        var random = SeededRandom(seed: 1)
        for _ in 0..<500 {
            let a: NodeID = randomID(&random)
            let b: NodeID = randomID(&random)
            let c: NodeID = randomID(&random)
            #expect(a.distance(to: a) == DHTKey(high: 0, middle: 0, low: 0))
            #expect(a.distance(to: b) == b.distance(to: a))
            let ab = zip(a.bytes, b.bytes).map { $0 ^ $1 }
            let ac = zip(a.bytes, c.bytes).map { $0 ^ $1 }
            #expect((a.distance(to: b) < a.distance(to: c)) == ab.lexicographicallyPrecedes(ac))
            #expect(DHTKey(a).nodeID == a)
            let shared = ab.firstIndex { $0 != 0 }.map { $0 * 8 + ab[$0].leadingZeroBitCount } ?? 160
            #expect(a.distance(to: b).leadingZeroBitCount == shared)
        }
    }

    @Test func bucketKeysFallInTheirBucket() {
        var random = SeededRandom(seed: 2)
        let own = DHTKey.random(using: &random)
        for index in 0..<159 {
            let key = own.flipping(bit: index).keepingPrefix(
                index + 1, randomBits: DHTKey.random(using: &random))
            #expect((key ^ own).leadingZeroBitCount == index)
        }
    }

    @Test(arguments: [UInt64(3), 4, 5])
    func invariantsHoldAsRandomNodesArrive(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let ownID: NodeID = randomID(&random)
        var table = RoutingTable(ownID: ownID, options: RoutingTableOptions(), now: .zero)
        for n in 0..<2000 {
            var id: NodeID = randomID(&random)
            // Also crowd the space near our id, so the own bucket splits deep.
            if n % 3 == 0 {
                id =
                    DHTKey(ownID).keepingPrefix(
                        Int(random.next(upperBound: UInt64(40))), randomBits: DHTKey(id)
                    ).nodeID
            }
            let node = DHTNodeInfo(id: id, endpoint: Self.address(n))
            _ = table.nodeResponded(node, isVerified: true, now: .zero)
        }
        #expect(
            table.nodeResponded(
                DHTNodeInfo(id: ownID, endpoint: Self.address(9999)), isVerified: true, now: .zero)
                == .refused)
        let ownKey = DHTKey(ownID)
        var addresses: Set<DHTIPAddress> = []
        for (index, bucket) in table.buckets.enumerated() {
            #expect(bucket.nodes.count <= 8 && bucket.replacements.count <= 8, "seed \(seed)")
            for node in bucket.nodes {
                let shared = (node.key ^ ownKey).leadingZeroBitCount
                // Only the last bucket (ours) was split, so every other bucket holds one exact prefix length.
                #expect(index == table.buckets.count - 1 ? shared >= index : shared == index, "seed \(seed)")
                #expect(addresses.insert(node.info.endpoint.address).inserted, "seed \(seed)")
            }
        }
        #expect(table.buckets.count > 10 && table.nodeCount > 80, "seed \(seed)")
        // Closest-K agrees with a brute-force sort of everything in the table.
        let everything = table.buckets.flatMap(\.nodes).map(\.info)
        for _ in 0..<20 {
            let target = DHTKey.random(using: &random)
            let expected = everything.sorted { (DHTKey($0.id) ^ target) < (DHTKey($1.id) ^ target) }.prefix(8)
            #expect(table.closest(to: target, count: 8, now: .zero) == Array(expected), "seed \(seed)")
        }
    }

    @Test func onePerAddressAndPerSubnet() {
        var random = SeededRandom(seed: 6)
        var table = RoutingTable(ownID: randomID(&random), options: RoutingTableOptions(), now: .zero)
        let first = DHTNodeInfo(id: randomID(&random), endpoint: endpoint(42, 1, 1, 1))
        #expect(table.nodeResponded(first, isVerified: true, now: .zero) == .added)
        #expect(table.nodeResponded(first, isVerified: true, now: .zero) == .refreshed)
        let sameIP = DHTNodeInfo(id: randomID(&random), endpoint: endpoint(42, 1, 1, 1, port: 1))
        #expect(table.nodeResponded(sameIP, isVerified: true, now: .zero) == .refused)
        let sameSubnet = DHTNodeInfo(id: randomID(&random), endpoint: endpoint(42, 1, 1, 2))
        #expect(table.nodeResponded(sameSubnet, isVerified: true, now: .zero) == .refused)
        let movedID = DHTNodeInfo(id: first.id, endpoint: endpoint(43, 1, 1, 1))
        #expect(table.nodeResponded(movedID, isVerified: true, now: .zero) == .refused)

        var open = RoutingTable(
            ownID: randomID(&random), options: RoutingTableOptions(oneNodePerSubnetPerBucket: false),
            now: .zero)
        #expect(open.nodeResponded(first, isVerified: true, now: .zero) == .added)
        #expect(open.nodeResponded(sameSubnet, isVerified: true, now: .zero) == .added)
    }

    /// Fills bucket 0 (ids whose first bit differs from ours) with eight nodes.
    static func fullFarBucket(_ random: inout SeededRandom, verified: Bool) -> (RoutingTable, [DHTNodeInfo]) {
        let ownID = NodeID(Array(repeating: 0, count: 20))!
        var table = RoutingTable(ownID: ownID, options: RoutingTableOptions(), now: .zero)
        // One near node first, so that the own bucket has split off and bucket 0 cannot split.
        _ = table.nodeResponded(
            DHTNodeInfo(id: NodeID(Array(repeating: 0, count: 19) + [1])!, endpoint: address(500)),
            isVerified: true, now: .zero)
        var far: [DHTNodeInfo] = []
        for n in 0..<9 {
            var bytes = (0..<20).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            bytes[0] |= 0x80
            far.append(DHTNodeInfo(id: NodeID(bytes)!, endpoint: address(n)))
            _ = table.nodeResponded(far[n], isVerified: verified, now: .zero)
        }
        return (table, far)
    }

    @Test func statusAgesAndBadNodesGiveWayToReplacements() {
        var random = SeededRandom(seed: 7)
        var (table, far) = Self.fullFarBucket(&random, verified: true)
        #expect(table.buckets[0].nodes.count == 8)
        #expect(table.buckets[0].replacements.map(\.info) == [far[8]])
        #expect(table.status(of: far[0].id, now: .zero) == .good)
        let later = Instant.zero.advanced(byNanoseconds: 15 * Self.minute)
        #expect(table.status(of: far[0].id, now: later) == .questionable)
        // Questionable nodes in a bucket with a replacement waiting are pinged, oldest first, one at a time.
        let checks = table.nodesToCheck(now: later, checkWindow: Self.minute)
        #expect(checks.count == 1 && far[0..<8].contains(checks[0]))
        #expect(table.nodesToCheck(now: later, checkWindow: Self.minute).isEmpty)
        table.queryFailed(checks[0].endpoint, now: later)
        #expect(table.status(of: checks[0].id, now: later) == .questionable)
        table.queryFailed(checks[0].endpoint, now: later)
        // Bad after two failures: the replacement takes its place.
        #expect(table.entry(for: checks[0].id) == nil)
        #expect(table.entry(for: far[8].id) != nil)
        #expect(table.buckets[0].replacements.isEmpty)
    }

    @Test func aVerifiedNewcomerDisplacesAnUnverifiedMember() {
        var random = SeededRandom(seed: 8)
        var (table, far) = Self.fullFarBucket(&random, verified: false)
        #expect(table.entry(for: far[8].id) == nil)
        var bytes = (0..<20).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes[0] |= 0x80
        let verified = DHTNodeInfo(id: NodeID(bytes)!, endpoint: Self.address(100))
        #expect(table.nodeResponded(verified, isVerified: true, now: .zero) == .added)
        #expect(table.buckets[0].nodes.count == 8)
    }

    /// A replacement's id that joins the bucket from another address leaves no second copy waiting: when
    /// a member goes bad, the id is not placed twice (the copy that never answers could never go bad).
    @Test func oneIdIsNeverInABucketTwice() throws {
        var random = SeededRandom(seed: 9)
        var (table, far) = Self.fullFarBucket(&random, verified: false)
        #expect(table.buckets[0].replacements.map(\.info) == [far[8]])
        let moved = DHTNodeInfo(id: far[8].id, endpoint: Self.address(200))
        #expect(table.nodeResponded(moved, isVerified: true, now: .zero) == .added)
        let member = try #require(table.buckets[0].nodes.first { $0.info.id != far[8].id }).info
        let later = Instant.zero.advanced(byNanoseconds: 15 * Self.minute)
        table.queryFailed(member.endpoint, now: later)
        table.queryFailed(member.endpoint, now: later)
        #expect(table.buckets[0].nodes.filter { $0.info.id == far[8].id }.count == 1)
    }
}

/// A table whose every node went bad (lost connectivity, say) is as thin as an empty one: lookups are
/// seeded from the bootstrap routers again, and a bad node that queries us is pinged, its answer
/// making it good again. (Counted as full, it never recovered behind a NAT.)
@Suite struct BadTableRecoveryTests {
    @Test func aTableOfBadNodesBootstrapsAgain() throws {
        let own = DHTKey(high: 0x1234_5678_9abc_def0, middle: 0x0fed_cba9_8765_4321, low: 0x1357_9bdf)
        var node = DHTNode(id: own.nodeID, random: SeededRandom(seed: 4), now: .zero)
        let router = endpoint(42, 1, 0, 1)
        node.addBootstrapEndpoints([router])
        let nodes = (0..<8).map { index in
            DHTNodeInfo(id: own.flipping(bit: 10 + index).nodeID, endpoint: endpoint(42, 2, UInt32(index), 1))
        }
        for info in nodes { _ = node.table.nodeResponded(info, isVerified: true, now: .zero) }
        for info in nodes {
            node.table.queryFailed(info.endpoint, now: .zero)
            node.table.queryFailed(info.endpoint, now: .zero)
        }
        #expect(node.routingTableNodeCount == 8 && node.liveRoutingTableNodeCount(now: .zero) == 0)
        var output = DHTOutput()
        _ = node.findNode(own.flipping(bit: 3).nodeID, now: .zero, into: &output)
        #expect(output.datagrams.contains { $0.destination == router }, "the routers are asked again")

        // A bad node that queries us is pinged.
        output.removeAll()
        let ping = KRPCMessage(transactionID: [9, 9], body: .query(.ping(sender: nodes[0].id)))
        node.received(ping.encoded(), from: nodes[0].endpoint, now: .zero, into: &output)
        let probe = output.datagrams.first {
            guard $0.destination == nodes[0].endpoint, let message = try? KRPCMessage.decode($0.bytes),
                case .query(.ping) = message.body
            else { return false }
            return true
        }
        let query = try #require(probe.flatMap { try? KRPCMessage.decode($0.bytes) }, "not pinged")
        output.removeAll()
        let answer = KRPCMessage(
            transactionID: query.transactionID, body: .response(KRPCResponse(sender: nodes[0].id)))
        node.received(answer.encoded(), from: nodes[0].endpoint, now: .zero, into: &output)
        #expect(node.liveRoutingTableNodeCount(now: .zero) == 1)
    }
}
