import Testing
import TorrentModel

@testable import DHT

/// One node's lookups against scripted answers.
@Suite struct LookupTests {
    static let ownKey = DHTKey(high: 0x1234_5678_9abc_def0, middle: 0x0fed_cba9_8765_4321, low: 0x1357_9bdf)
    static let router = endpoint(42, 1, 0, 1)

    /// Answers every `find_node` in `datagrams` sent to one of `nodes`, as that node, with the nodes
    /// `named` gives for it (none by default); returns what the node sent meanwhile (the datagrams given included) and its events.
    static func answerAll(
        _ datagrams: [DHTDatagram], as nodes: [DHTEndpoint: NodeID],
        naming named: [DHTEndpoint: [DHTNodeInfo]] = [:],
        node: inout DHTNode, now: Instant
    ) -> (sent: [DHTDatagram], events: [DHTEvent]) {
        var sent: [DHTDatagram] = []
        var events: [DHTEvent] = []
        var queue = datagrams
        while !queue.isEmpty {
            let datagram = queue.removeFirst()
            sent.append(datagram)
            guard let id = nodes[datagram.destination], let message = try? KRPCMessage.decode(datagram.bytes),
                case .query(.findNode) = message.body
            else { continue }
            var output = DHTOutput()
            let answer = KRPCMessage(
                transactionID: message.transactionID,
                body: .response(KRPCResponse(sender: id, nodes: named[datagram.destination] ?? [])))
            node.received(answer.encoded(), from: datagram.destination, now: now, into: &output)
            queue += output.datagrams
            events += output.events
        }
        return (sent, events)
    }

    /// The target of a `find_node` datagram.
    static func findNodeTarget(_ datagram: DHTDatagram) -> DHTKey? {
        guard case .query(.findNode(_, let target, _))? = try? KRPCMessage.decode(datagram.bytes).body else {
            return nil
        }
        return DHTKey(target)
    }

    /// The bug behind lookups that ended in the wrong region of the id space: a lookup of our own id meets
    /// our neighbours and hardly anyone far away, and far nodes rarely query us, so the far buckets stayed
    /// near empty until the 15-minute refresh; a lookup for a target there could then only reach nodes
    /// that knew nobody closer. Now, once the lookup of our own id ends, each far bucket short of K nodes
    /// is looked up (Kademlia's join).
    @Test func aLookupOfOurOwnIDIsFollowedByLookupsInTheSparseFarBuckets() throws {
        var node = DHTNode(id: Self.ownKey.nodeID, random: SeededRandom(seed: 1), now: .zero)
        node.addBootstrapEndpoints([Self.router])
        var output = DHTOutput()
        let bootstrap = try #require(node.bootstrap(now: .zero, into: &output))
        let query = try #require(onlyMessage(in: output, to: Self.router))

        // The router sits in the far half (bucket 0) and knows 8 of our neighbours (sharing 40+ bits).
        let routerID = Self.ownKey.flipping(bit: 0).nodeID
        let neighbours = (0..<8).map { index in
            DHTNodeInfo(
                id: Self.ownKey.flipping(bit: 40 + index).nodeID, endpoint: endpoint(42, 2, UInt32(index), 1))
        }
        let routerAnswer = KRPCMessage(
            transactionID: query.transactionID,
            body: .response(KRPCResponse(sender: routerID, nodes: neighbours)))
        output.removeAll()
        node.received(routerAnswer.encoded(), from: Self.router, now: .zero, into: &output)
        var ids = Dictionary(uniqueKeysWithValues: neighbours.map { ($0.endpoint, $0.id) })
        ids[Self.router] = routerID
        let (sent, events) = Self.answerAll(output.datagrams, as: ids, node: &node, now: .zero)

        let finished = events.firstIndex { event in
            if case .lookupFinished(bootstrap, _) = event { return true }
            return false
        }
        #expect(finished != nil, "the bootstrap lookup did not finish")
        #expect(node.routingTableBucketCount == 2, "bucket 0 holds the router, bucket 1 the neighbours")
        let ownIDQueries = sent.filter { Self.findNodeTarget($0) == Self.ownKey }
        let farQueries = sent.filter { datagram in
            Self.findNodeTarget(datagram).map { ($0 ^ Self.ownKey).leadingZeroBitCount == 0 } ?? false
        }
        #expect(ownIDQueries.count == 8, "each neighbour asked once for our id")
        #expect(farQueries.contains { $0.destination == Self.router }, "bucket 0 was not looked up")
        #expect(farQueries.count + ownIDQueries.count == sent.count, "only bucket 0 is short and far")
    }

    /// Endpoints are asked once per lookup, so a node named under a made-up id close to the target (a
    /// lie, or a stale entry) would keep the real node at that endpoint out of the lookup if its answer,
    /// under its real id, were refused. It counts under the id it answers with.
    /// Values no peer can have (port 0, 0/8, multicast, broadcast) are not handed on as peers.
    @Test func valuesThatCannotBePeersAreDropped() {
        var lookup = Lookup(
            id: LookupID(value: 1), startedAt: .zero, target: Self.ownKey.flipping(bit: 3).nodeID,
            purpose: .getPeers(announce: nil), reportsToCaller: true, bucketSize: 8,
            requiresVerifiedIDs: false)
        lookup.add(endpoints: [Self.router])
        let peer = endpoint(42, 9, 0, 1)
        let values = [
            peer, endpoint(42, 9, 0, 2, port: 0), endpoint(0, 0, 0, 5), endpoint(224, 0, 0, 1),
            endpoint(255, 255, 255, 255),
        ]
        let fresh = lookup.responded(
            at: 0, response: KRPCResponse(sender: Self.ownKey.flipping(bit: 0).nodeID, values: values),
            isVerified: true, family: .ipv4, ownID: Self.ownKey.nodeID)
        #expect(fresh == [peer])
    }

    /// One host naming 32 of its own ports, each under an id close to the target, gives the lookup
    /// one candidate (one per IPv4 /24), not the lookup's every place; nodes with port 0 or an
    /// unroutable address are not asked at all; LAN addresses are exempt.
    @Test func oneSubnetGivesOneCandidate() {
        let target = Self.ownKey.flipping(bit: 3).nodeID
        var lookup = Lookup(
            id: LookupID(value: 1), startedAt: .zero, target: target, purpose: .getPeers(announce: nil),
            reportsToCaller: true, bucketSize: 8, requiresVerifiedIDs: false)
        let sybils = (0..<32).map { index in
            DHTNodeInfo(
                id: DHTKey(target).flipping(bit: 159 - index).nodeID,
                endpoint: endpoint(42, 7, 0, UInt32(1 + index % 4), port: UInt16(40_000 + index)))
        }
        let junk = [
            DHTNodeInfo(
                id: DHTKey(target).flipping(bit: 100).nodeID, endpoint: endpoint(42, 8, 0, 1, port: 0)),
            DHTNodeInfo(id: DHTKey(target).flipping(bit: 101).nodeID, endpoint: endpoint(224, 0, 0, 1)),
        ]
        let lan = (0..<3).map { index in
            DHTNodeInfo(
                id: DHTKey(target).flipping(bit: 90 + index).nodeID,
                endpoint: endpoint(10, 0, 0, 1, port: UInt16(7_000 + index)))
        }
        lookup.add(sybils + junk + lan, ownID: Self.ownKey.nodeID)
        let subnet7 = lookup.candidates.filter {
            $0.endpoint.address == endpoint(42, 7, 0, 1).address.subnet
                || $0.endpoint.address.subnet == endpoint(42, 7, 0, 1).address.subnet
        }
        #expect(subnet7.count == 1, "\(lookup.candidates.map(\.endpoint))")
        #expect(lookup.candidates.count == 1 + lan.count, "\(lookup.candidates.map(\.endpoint))")
    }

    @Test func aNodeNamedUnderAnotherIDCountsUnderTheIDItAnswersWith() throws {
        var node = DHTNode(id: Self.ownKey.nodeID, random: SeededRandom(seed: 2), now: .zero)
        node.addBootstrapEndpoints([Self.router])
        var output = DHTOutput()
        let bootstrap = try #require(node.bootstrap(now: .zero, into: &output))
        let query = try #require(onlyMessage(in: output, to: Self.router))

        let routerID = Self.ownKey.flipping(bit: 0).nodeID
        let real = DHTNodeInfo(id: Self.ownKey.flipping(bit: 30).nodeID, endpoint: endpoint(42, 3, 0, 1))
        let madeUp = DHTNodeInfo(id: Self.ownKey.flipping(bit: 150).nodeID, endpoint: real.endpoint)
        let routerAnswer = KRPCMessage(
            transactionID: query.transactionID,
            body: .response(KRPCResponse(sender: routerID, nodes: [madeUp])))
        output.removeAll()
        node.received(routerAnswer.encoded(), from: Self.router, now: .zero, into: &output)
        let (_, events) = Self.answerAll(
            output.datagrams, as: [real.endpoint: real.id, Self.router: routerID], node: &node, now: .zero)

        let result = events.lazy.compactMap { event -> LookupResult? in
            if case .lookupFinished(bootstrap, let result) = event { return result }
            return nil
        }.first
        #expect(result?.closestNodes == [real, DHTNodeInfo(id: routerID, endpoint: Self.router)])
        #expect(result?.rounds == 2, "the router from the bootstrap list, then the node it named")
    }

    /// Each dead node among the closest took a live node's place in the answers that named it, so the
    /// lookup asks one node more for each: here the only node that knows X, which is closer than the
    /// 8th live node named. Asking only the 8 closest live nodes ended without X.
    @Test func aDeadNodeAmongTheClosestWidensTheLookupByOne() throws {
        var node = DHTNode(id: Self.ownKey.nodeID, random: SeededRandom(seed: 3), now: .zero)
        node.addBootstrapEndpoints([Self.router])
        var output = DHTOutput()
        let bootstrap = try #require(node.bootstrap(now: .zero, into: &output))
        let query = try #require(onlyMessage(in: output, to: Self.router))

        let routerID = Self.ownKey.flipping(bit: 0).nodeID
        // n[0] is the closest and dead; n[i] is farther as i grows.
        let named = (0..<10).map { index in
            DHTNodeInfo(
                id: Self.ownKey.flipping(bit: 150 - index).nodeID, endpoint: endpoint(42, 2, UInt32(index), 1)
            )
        }
        // Just farther than n[5].
        let x = DHTNodeInfo(
            id: Self.ownKey.flipping(bit: 145).flipping(bit: 159).nodeID, endpoint: endpoint(42, 3, 0, 1))
        var ids = Dictionary(uniqueKeysWithValues: named.dropFirst().map { ($0.endpoint, $0.id) })
        ids[x.endpoint] = x.id
        ids[Self.router] = routerID
        let routerAnswer = KRPCMessage(
            transactionID: query.transactionID, body: .response(KRPCResponse(sender: routerID, nodes: named)))
        output.removeAll()
        node.received(routerAnswer.encoded(), from: Self.router, now: .zero, into: &output)
        var (sent, events) = Self.answerAll(
            output.datagrams, as: ids, naming: [named[9].endpoint: [x]], node: &node, now: .zero)
        for second in 1...12 {
            let now = Instant.zero.advanced(byNanoseconds: UInt64(second) * 1_000_000_000)
            output.removeAll()
            node.tick(now: now, into: &output)
            events += output.events
            let answered = Self.answerAll(
                output.datagrams, as: ids, naming: [named[9].endpoint: [x]], node: &node, now: now)
            sent += answered.sent
            events += answered.events
        }

        let result = events.lazy.compactMap { event -> LookupResult? in
            if case .lookupFinished(bootstrap, let result) = event { return result }
            return nil
        }.first
        #expect(
            sent.contains { $0.destination == named[9].endpoint && Self.findNodeTarget($0) == Self.ownKey })
        #expect(result?.closestNodes == Array(named[1...5]) + [x] + Array(named[6...7]))
    }
}
