import Testing
import TorrentModel

@testable import DHT

/// A node answering queries: tokens, storage, node lists and rate limits.
@Suite struct ServingTests {
    static let asker = endpoint(42, 0, 9, 1, port: 5000)
    static let askerID: NodeID = asciiID("abcdefghij0123456789")
    static let infoHash: InfoHash = asciiID("mnopqrstuvwxyz123456")

    static func node() -> DHTNode {
        var random = SeededRandom(seed: 11)
        return DHTNode(id: randomID(&random), random: random, now: .zero)
    }

    /// Sends one query and returns the answer (ignoring the probe ping the node may send the asker).
    static func ask(
        _ node: inout DHTNode, _ query: KRPCQuery, from source: DHTEndpoint = asker, at now: Instant = .zero
    ) -> KRPCMessage? {
        var output = DHTOutput()
        let transactionID = ascii("tx")
        node.received(
            KRPCMessage(transactionID: transactionID, body: .query(query)).encoded(), from: source, now: now,
            into: &output)
        return output.datagrams.lazy.compactMap { try? KRPCMessage.decode($0.bytes) }
            .first { $0.transactionID == transactionID }
    }

    @Test func pingIsAnsweredWithOurIDAndTheAskersAddress() {
        var node = Self.node()
        let answer = Self.ask(&node, .ping(sender: Self.askerID))
        #expect(response(answer)?.sender == node.id)
        #expect(answer?.requesterEndpoint == Self.asker)
    }

    @Test func announceNeedsAValidTokenAndThenIsServed() {
        var node = Self.node()
        let first = response(
            Self.ask(&node, .getPeers(sender: Self.askerID, infoHash: Self.infoHash, want: [])))
        #expect(first?.values == [])
        guard let token = first?.token else {
            Issue.record("no token")
            return
        }
        let forged = Self.ask(
            &node,
            .announcePeer(
                sender: Self.askerID, infoHash: Self.infoHash, port: 7000, impliedPort: false, token: [1, 2]))
        #expect(forged?.body == .error(code: 203, message: ascii("bad token")))
        // A token is bound to the asker's IP.
        let otherIP = Self.ask(
            &node,
            .announcePeer(
                sender: Self.askerID, infoHash: Self.infoHash, port: 7000, impliedPort: false, token: token),
            from: endpoint(42, 0, 10, 1))
        #expect(otherIP?.body == .error(code: 203, message: ascii("bad token")))
        #expect(node.storedInfoHashCount == 0)

        let announce = Self.ask(
            &node,
            .announcePeer(
                sender: Self.askerID, infoHash: Self.infoHash, port: 7000, impliedPort: false, token: token))
        #expect(response(announce)?.sender == node.id)
        let implied = Self.ask(
            &node,
            .announcePeer(
                sender: Self.askerID, infoHash: Self.infoHash, port: 1, impliedPort: true, token: token))
        #expect(response(implied) != nil)
        let values = response(
            Self.ask(&node, .getPeers(sender: Self.askerID, infoHash: Self.infoHash, want: [])))?.values
        // One address is one peer: the implied port (the query's source port) replaced port 7000.
        #expect(values == [Self.asker])
    }

    @Test func tokensOutliveOneRotationButNotTwo() {
        var random = SeededRandom(seed: 12)
        let fiveMinutes: UInt64 = 300_000_000_000
        var tokens = WriteTokens(rotationNanoseconds: fiveMinutes, random: &random, now: .zero)
        let address = DHTIPAddress.v4(0x2a00_0001)
        let token = tokens.token(for: address)
        #expect(token.count == 8 && tokens.isValid(token, for: address))
        #expect(!tokens.isValid(token, for: .v4(0x2a00_0002)))
        tokens.tick(now: Instant(nanoseconds: fiveMinutes - 1), random: &random)
        #expect(tokens.token(for: address) == token)
        tokens.tick(now: Instant(nanoseconds: fiveMinutes), random: &random)
        #expect(tokens.token(for: address) != token && tokens.isValid(token, for: address))
        tokens.tick(now: Instant(nanoseconds: 2 * fiveMinutes), random: &random)
        #expect(!tokens.isValid(token, for: address))
    }

    @Test func storedPeersExpireAndAreBounded() {
        var store = PeerStore(maxInfoHashes: 1, maxPeersPerInfoHash: 2, lifetimeNanoseconds: 100)
        var random = SeededRandom(seed: 13)
        // Two peers fit, a third does not, a known one refreshes, and a second infohash does not fit.
        let later = Instant(nanoseconds: 50)
        let outcomes = [
            store.store(endpoint(1, 1, 1, 1), for: Self.infoHash, now: .zero),
            store.store(endpoint(1, 1, 1, 2), for: Self.infoHash, now: .zero),
            store.store(endpoint(1, 1, 1, 3), for: Self.infoHash, now: .zero),
            store.store(endpoint(1, 1, 1, 1), for: Self.infoHash, now: later),
            store.store(endpoint(1, 1, 1, 1), for: asciiID("01234567890123456789"), now: .zero),
        ]
        #expect(outcomes == [true, true, false, true, false])
        #expect(store.peers(for: Self.infoHash, family: .ipv4, limit: 1, random: &random).count == 1)
        #expect(store.peers(for: Self.infoHash, family: .ipv6, limit: 5, random: &random).isEmpty)
        store.expire(now: Instant(nanoseconds: 100))
        #expect(
            store.peers(for: Self.infoHash, family: .ipv4, limit: 5, random: &random) == [
                endpoint(1, 1, 1, 1)
            ])
        store.expire(now: Instant(nanoseconds: 150))
        #expect(store.infoHashCount == 0)
    }

    /// One address is one peer of an infohash (its latest port), and is stored under a bounded number of
    /// infohashes; its place is given back when its announce expires.
    @Test func oneAddressCannotFillTheStore() {
        var store = PeerStore(
            maxInfoHashes: 10, maxPeersPerInfoHash: 10, maxInfoHashesPerAddress: 2, lifetimeNanoseconds: 100)
        var random = SeededRandom(seed: 14)
        for port: UInt16 in 1...20 {
            store.store(endpoint(1, 1, 1, 1, port: port), for: Self.infoHash, now: .zero)
        }
        #expect(
            store.peers(for: Self.infoHash, family: .ipv4, limit: 20, random: &random) == [
                endpoint(1, 1, 1, 1, port: 20)
            ])
        let others: [InfoHash] = [asciiID("01234567890123456789"), asciiID("abcdefghijabcdefghij")]
        let middle = Instant(nanoseconds: 50)
        let outcomes = [
            store.store(endpoint(1, 1, 1, 1), for: others[0], now: middle),
            store.store(endpoint(1, 1, 1, 1), for: others[1], now: middle),
            store.store(endpoint(1, 1, 1, 2), for: others[1], now: middle),
        ]
        #expect(outcomes == [true, false, true])
        store.expire(now: Instant(nanoseconds: 100))
        let afterExpiry = store.store(endpoint(1, 1, 1, 1), for: others[1], now: Instant(nanoseconds: 100))
        #expect(afterExpiry)
    }

    /// An IPv6 host holds a /64: its addresses are one peer, and one holder of places, however many
    /// it takes (each would otherwise count as a host of its own).
    @Test func anIPv6Slash64IsOneHostOfTheStore() {
        var store = PeerStore(
            maxInfoHashes: 10, maxPeersPerInfoHash: 10, maxInfoHashesPerAddress: 2, lifetimeNanoseconds: 100)
        var random = SeededRandom(seed: 15)
        for low: UInt64 in 1...20 {
            store.store(
                DHTEndpoint(address: .v6(high: 0x2001_0db8_0000_0001, low: low), port: 6881),
                for: Self.infoHash,
                now: .zero)
        }
        #expect(
            store.peers(for: Self.infoHash, family: .ipv6, limit: 20, random: &random) == [
                DHTEndpoint(address: .v6(high: 0x2001_0db8_0000_0001, low: 20), port: 6881)
            ])
        let others: [InfoHash] = [asciiID("01234567890123456789"), asciiID("abcdefghijabcdefghij")]
        let outcomes = others.map { infoHash in
            store.store(
                DHTEndpoint(address: .v6(high: 0x2001_0db8_0000_0001, low: 99), port: 6881), for: infoHash,
                now: .zero)
        }
        #expect(outcomes == [true, false])
    }

    /// Puts `other` in `node`'s table the only way the table learns nodes: it queries us, is probed with
    /// a ping, and answers.
    static func admit(_ other: DHTNodeInfo, to node: inout DHTNode) {
        var output = DHTOutput()
        node.received(
            KRPCMessage(transactionID: ascii("q1"), body: .query(.ping(sender: other.id))).encoded(),
            from: other.endpoint, now: .zero, into: &output)
        guard
            let probe = output.datagrams.lazy.compactMap({ try? KRPCMessage.decode($0.bytes) }).first(where: {
                if case .query(.ping) = $0.body { true } else { false }
            })
        else {
            Issue.record("no probe ping")
            return
        }
        output.removeAll()
        node.received(
            KRPCMessage(transactionID: probe.transactionID, body: .response(KRPCResponse(sender: other.id)))
                .encoded(),
            from: other.endpoint, now: .zero, into: &output)
    }

    @Test func findNodeReturnsClosestNodesForTheWantedFamily() {
        var node = Self.node()
        let other = DHTNodeInfo(id: asciiID("zzzzzzzzzzzzzzzzzzzz"), endpoint: endpoint(42, 0, 20, 1))
        Self.admit(other, to: &node)
        #expect(node.routingTableNodeCount == 1)
        let nodes = response(Self.ask(&node, .findNode(sender: Self.askerID, target: other.id, want: [])))?
            .nodes
        #expect(nodes == [other])
        let v6Only = response(
            Self.ask(&node, .findNode(sender: Self.askerID, target: other.id, want: [.ipv6])))
        #expect(v6Only?.nodes == [] && v6Only?.nodes6 == [])
    }

    /// BEP 32, dual stack: the IPv4 node answers a `want` naming IPv6 from the IPv6 node's table beside
    /// it, and without a `want` only with its own family's nodes.
    @Test func aDualStackNodeAnswersWantWithBothTables() {
        var ipv4 = Self.node()
        var random = SeededRandom(seed: 16)
        var ipv6 = DHTNode(
            id: ipv4.id, configuration: DHTConfiguration(family: .ipv6), random: random, now: .zero)
        let near4 = DHTNodeInfo(id: randomID(&random), endpoint: endpoint(42, 0, 20, 1))
        let near6 = DHTNodeInfo(
            id: randomID(&random), endpoint: DHTEndpoint(address: .v6(high: 0x2a00 << 48, low: 7), port: 6881)
        )
        Self.admit(near4, to: &ipv4)
        Self.admit(near6, to: &ipv6)
        #expect(ipv6.routingTableNodeCount == 1)

        func ask(_ want: KRPCWant, alongside: DHTNode?) -> KRPCResponse? {
            var output = DHTOutput()
            ipv4.received(
                KRPCMessage(
                    transactionID: ascii("tx"),
                    body: .query(.findNode(sender: Self.askerID, target: near4.id, want: want))
                ).encoded(), from: Self.asker, now: .zero, into: &output, alongside: alongside)
            return response(
                output.datagrams.lazy.compactMap { try? KRPCMessage.decode($0.bytes) }
                    .first { $0.transactionID == ascii("tx") })
        }
        let both = ask([.ipv4, .ipv6], alongside: ipv6)
        #expect(both?.nodes == [near4] && both?.nodes6 == [near6])
        let sixOnly = ask([.ipv6], alongside: ipv6)
        #expect(sixOnly?.nodes == [] && sixOnly?.nodes6 == [near6])
        let plain = ask([], alongside: ipv6)
        #expect(plain?.nodes == [near4] && plain?.nodes6 == [])
        let single = ask([.ipv4, .ipv6], alongside: nil)
        #expect(single?.nodes == [near4] && single?.nodes6 == [])
    }

    /// BEP 32's bootstrap: while the other family's table is thin, lookups ask for both families and
    /// hand the other's nodes on; its node then bootstraps through them at its next tick.
    @Test func aDualStackNodeFetchesNodesForTheOtherFamilyWhileItsTableIsThin() throws {
        var random = SeededRandom(seed: 17)
        var ipv4 = DHTNode(id: randomID(&random), random: random, now: .zero)
        let router = endpoint(42, 0, 30, 1)
        ipv4.addBootstrapEndpoints([router])

        func bootstrapQuery(_ node: inout DHTNode) throws -> KRPCMessage {
            var output = DHTOutput()
            node.bootstrap(now: .zero, into: &output)
            return try #require(output.datagrams.lazy.compactMap { try? KRPCMessage.decode($0.bytes) }.first)
        }
        guard case .query(.findNode(_, _, let plainWant)) = try bootstrapQuery(&ipv4).body else {
            Issue.record("no find_node")
            return
        }
        #expect(plainWant.isEmpty, "a single-stack query carries no want")

        ipv4.wantsOtherFamilyNodes = true
        let query = try bootstrapQuery(&ipv4)
        guard case .query(.findNode(_, _, let want)) = query.body else {
            Issue.record("no find_node")
            return
        }
        #expect(want == [.ipv4, .ipv6])
        let v6Node = DHTNodeInfo(
            id: randomID(&random), endpoint: DHTEndpoint(address: .v6(high: 0x2a00 << 48, low: 9), port: 6881)
        )
        var answer = KRPCResponse(sender: randomID(&random))
        answer.nodes6 = [v6Node]
        var output = DHTOutput()
        ipv4.received(
            KRPCMessage(transactionID: query.transactionID, body: .response(answer)).encoded(), from: router,
            now: .zero, into: &output)
        #expect(output.events.contains(.otherFamilyNodes([v6Node])))

        var ipv6 = DHTNode(
            id: ipv4.id, configuration: DHTConfiguration(family: .ipv6), random: random, now: .zero)
        output.removeAll()
        ipv6.bootstrap(now: .zero, into: &output)
        #expect(output.datagrams.isEmpty, "no router, nothing to ask")
        ipv6.learnNodes([v6Node])
        output.removeAll()
        ipv6.tick(now: Instant(nanoseconds: 250_000_000), into: &output)
        #expect(output.datagrams.map(\.destination) == [v6Node.endpoint], "bootstraps at once, not in 15 s")
        // It never answers: once its queries time out, it is not asked again.
        for second in [2, 4, 8, 16, 32, 64] as [UInt64] {
            output.removeAll()
            ipv6.tick(now: Instant(nanoseconds: second * 1_000_000_000), into: &output)
        }
        #expect(!output.datagrams.contains { $0.destination == v6Node.endpoint })
        #expect(ipv6.pendingQueryCount == 0)
    }

    @Test func malformedQueriesGetAnErrorAndOtherGarbageNothing() {
        var node = Self.node()
        var output = DHTOutput()
        node.received(
            ascii("d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:zz1:y1:qe"), from: Self.asker, now: .zero,
            into: &output)
        guard case .error(204, _)? = onlyMessage(in: output, to: Self.asker)?.body else {
            Issue.record("no method-unknown error")
            return
        }
        output.removeAll()
        node.received(ascii("garbage"), from: Self.asker, now: .zero, into: &output)
        node.received(
            ascii("d1:rd2:id20:abcdefghij0123456789e1:t2:zz1:y1:re"), from: Self.asker, now: .zero,
            into: &output)
        #expect(output.datagrams.isEmpty)
        #expect(node.statistics.malformedDatagrams == 2 && node.statistics.unexpectedAnswers == 1)
    }

    /// Queriers the table would take are pinged to see whether they answer; one asking again before
    /// answering is not pinged again, and a crowd of new queriers gets at most 256 pings in flight.
    @Test func queriersAreProbedOnceEachAndBoundedInFlight() {
        var node = Self.node()
        var clock: UInt64 = 0
        func probes(from sources: [DHTEndpoint], ids: [NodeID]) -> Int {
            var output = DHTOutput()
            // 5 ms apart: within the send budget (an answer and a ping each), and within the timeout.
            for (source, id) in zip(sources, ids) {
                clock += 5_000_000
                node.received(
                    KRPCMessage(transactionID: ascii("q1"), body: .query(.ping(sender: id))).encoded(),
                    from: source, now: Instant(nanoseconds: clock), into: &output)
            }
            return output.datagrams.compactMap { try? KRPCMessage.decode($0.bytes) }.filter {
                if case .query(.ping) = $0.body { true } else { false }
            }.count
        }
        #expect(
            probes(from: [Self.asker, Self.asker, Self.asker], ids: Array(repeating: Self.askerID, count: 3))
                == 1)
        var random = SeededRandom(seed: 3)
        let crowd = (0..<300).map { endpoint(43, UInt32($0 / 250), UInt32($0 % 250), 1) }
        #expect(probes(from: crowd, ids: crowd.map { _ in randomID(&random) }) == 255)
        #expect(node.pendingQueryCount == 256)
    }

    @Test func eachSourceIsRateLimited() {
        var node = Self.node()
        var answered = 0
        for _ in 0..<50 where Self.ask(&node, .ping(sender: Self.askerID)) != nil { answered += 1 }
        #expect(answered == 20)  // the burst, with no time passing
        #expect(Self.ask(&node, .ping(sender: Self.askerID), from: endpoint(42, 0, 11, 1)) != nil)
        #expect(Self.ask(&node, .ping(sender: Self.askerID), at: Instant(nanoseconds: 1_000_000_000)) != nil)
    }

    /// An IPv6 host is one source per /64; a limiter tracking as many sources as it may makes room by
    /// forgetting idle ones (at most once a second) rather than refusing every new source.
    @Test func sourcesAreIPv6Slash64sAndAFullLimiterMakesRoom() {
        var limiter = SourceRateLimiter(queriesPerSecond: 10, burst: 2, maxSources: 3)
        let host = { (low: UInt64) in DHTIPAddress.v6(high: 0x2001_0db8_0000_0001, low: low) }
        let answered = [host(1), host(2), host(3), .v4(1), .v4(2), .v4(3)].map {
            limiter.allows($0, now: .zero)
        }
        // One /64 is one bucket of 2; then the limiter is full, and no source is idle.
        #expect(answered == [true, true, false, true, true, false])
        let later = limiter.allows(.v4(3), now: Instant(nanoseconds: 1_000_000_000))
        #expect(later, "all idle a second later")
        #expect(limiter.trackedSources == 1)
    }

    @Test func savedStateRoundTrips() throws {
        var random = SeededRandom(seed: 14)
        let state = DHTSavedState(
            id: randomID(&random),
            nodes: [
                DHTNodeInfo(id: randomID(&random), endpoint: endpoint(1, 2, 3, 4)),
                DHTNodeInfo(
                    id: randomID(&random), endpoint: DHTEndpoint(address: .v6(high: 1, low: 2), port: 3)),
            ])
        #expect(try DHTSavedState(decoding: state.encoded()) == state)
        #expect(throws: DHTSavedState.DecodingError.missingID) { try DHTSavedState(decoding: ascii("de")) }
        #expect(throws: DHTSavedState.DecodingError.malformedNodes) {
            try DHTSavedState(decoding: ascii("d2:id20:abcdefghij01234567895:nodes3:abce"))
        }
        #expect(throws: DHTSavedState.DecodingError.malformedIPv6ID) {
            try DHTSavedState(decoding: ascii("d2:id20:abcdefghij01234567893:id62:abe"))
        }
    }

    /// BEP 32 prefers one id for both DHTs; when BEP 42 gave the IPv6 node another, both are kept.
    @Test func bothFamiliesNodesAndIDsAreKeptInOneState() throws {
        var random = SeededRandom(seed: 15)
        let ipv4 = DHTSavedState(
            id: randomID(&random), nodes: [DHTNodeInfo(id: randomID(&random), endpoint: endpoint(1, 2, 3, 4))]
        )
        let sameID = DHTSavedState(
            id: ipv4.id,
            nodes: [
                DHTNodeInfo(
                    id: randomID(&random), endpoint: DHTEndpoint(address: .v6(high: 1, low: 2), port: 3))
            ])
        let merged = ipv4.merged(withIPv6: sameID)
        #expect(merged.ipv6ID == nil)
        #expect(!String(decoding: merged.encoded(), as: UTF8.self).contains("3:id6"))
        #expect(merged.nodes == ipv4.nodes + sameID.nodes)
        #expect(merged.id(for: .ipv6) == ipv4.id)

        let otherID = DHTSavedState(id: randomID(&random), nodes: sameID.nodes)
        let both = try DHTSavedState(decoding: ipv4.merged(withIPv6: otherID).encoded())
        #expect(both.id(for: .ipv4) == ipv4.id)
        #expect(both.id(for: .ipv6) == otherID.id)
        #expect(both.nodes.count == 2)
    }
}
