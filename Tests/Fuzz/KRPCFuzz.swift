// libFuzzer harness for the DHT: the KRPC decoder and a node's receive path. Built by run.sh, not by
// SwiftPM.
import DHT
import TorrentModel

/// Decodes the whole input as one KRPC datagram: an accepted message must respect the limits and
/// survive re-encoding unchanged. Then replays the input as a script against a `DHTNode`: raw datagrams
/// from a few sources (optionally carrying the transaction id of our last query to that source, so that
/// they reach the answer path), well-formed answers with fuzzed node lists and peers, lookups and
/// announces started, and time passing; as half of a dual stack (BEP 32) too, asking for the other
/// family's nodes and answering from an IPv6 node beside it. The node must never trap; everything it
/// sends must be a KRPC message within the datagram limit; its lookups and queries in flight must stay
/// within their caps; the nodes it hands the other family are all of that family.
@_cdecl("LLVMFuzzerTestOneInput")
public func krpcFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    let whole = input.rest()
    let limits = KRPCLimits()
    if let message = try? KRPCMessage.decode(whole, limits: limits) {
        if case .response(let response) = message.body {
            precondition(
                response.nodes.count <= limits.maxNodesPerList
                    && response.nodes6.count <= limits.maxNodesPerList)
            precondition(response.values.count <= limits.maxValues)
        }
        precondition(
            (try? KRPCMessage.decode(message.encoded(), limits: limits)) == message, "round trip changed")
    }

    input = FuzzInput(whole)
    var driver = Driver()
    while !input.isAtEnd { driver.step(&input) }
    return 0
}

private struct Driver {
    let sources = [
        DHTEndpoint(address: .v4(0x2a00_0001), port: 6881), DHTEndpoint(address: .v4(0x2a00_0101), port: 1),
        DHTEndpoint(address: .v4(0x0a00_0001), port: 6881),
        DHTEndpoint(address: .v6(high: 1, low: 2), port: 6881),
    ]
    var node: DHTNode
    /// The IPv6 node beside it, once an op turns the dual stack on.
    var sibling: DHTNode
    var dualStack = false
    var now = Instant.zero
    var output = DHTOutput()
    /// The transaction id of the last query we sent to each address.
    var lastQueryID: [DHTEndpoint: [UInt8]] = [:]
    let infoHash = InfoHash(Array(repeating: 0xab, count: 20))!

    init() {
        var configuration = DHTConfiguration()
        configuration.maxPendingQueries = 64
        configuration.maxConcurrentLookups = 4
        node = DHTNode(
            id: NodeID(Array(repeating: 0x11, count: 20))!, configuration: configuration,
            random: SeededRandom(seed: 1), now: now)
        node.addBootstrapEndpoints(Array(sources.prefix(3)))
        sibling = DHTNode(
            id: NodeID(Array(repeating: 0x11, count: 20))!, configuration: DHTConfiguration(family: .ipv6),
            random: SeededRandom(seed: 2), now: now)
    }

    mutating func step(_ input: inout FuzzInput) {
        let op = input.byte()
        let source = sources[Int(op >> 4) % sources.count]
        switch op & 0x0f {
        case 0, 1:
            var datagram = input.prefix(Int(input.uint16() % 1600))
            if op & 1 == 1, let id = lastQueryID[source] { datagram = patch(datagram, transactionID: id) }
            node.received(
                datagram, from: source, now: now, into: &output, alongside: dualStack ? sibling : nil)
        case 2, 3:
            guard let id = lastQueryID[source] else { return }
            var response = KRPCResponse(sender: NodeID(input.bytes(20))!)
            for _ in 0..<Int(input.byte() % 10) {
                let endpoint = DHTEndpoint(
                    address: .v4(UInt32(input.uint16()) << 16 | 0x0101), port: input.uint16() | 1)
                response.nodes.append(DHTNodeInfo(id: NodeID(input.bytes(20))!, endpoint: endpoint))
            }
            for _ in 0..<Int(input.byte() % 4) {
                response.values.append(
                    DHTEndpoint(address: .v4(UInt32(input.uint16())), port: input.uint16()))
            }
            response.token = op & 1 == 1 ? input.bytes(4) : nil
            node.received(
                KRPCMessage(transactionID: id, body: .response(response)).encoded(), from: source, now: now,
                into: &output)
        case 4:
            now = now.advanced(byNanoseconds: UInt64(input.byte()) * 100_000_000)
            node.tick(now: now, into: &output)
        case 5:
            node.findPeers(for: infoHash, now: now, into: &output)
        case 6:
            node.announce(
                infoHash, port: input.uint16() | 1, impliedPort: op & 0x10 != 0, now: now, into: &output)
        case 7:
            node.bootstrap(now: now, into: &output)
        case 8:
            dualStack.toggle()
            node.wantsOtherFamilyNodes = dualStack && op & 0x10 != 0
        default:
            now = now.advanced(byNanoseconds: 60_000_000_000)
            node.tick(now: now, into: &output)
        }
        check()
    }

    /// Puts `transactionID` in place of the datagram's own, if it has one where a message would.
    private func patch(_ datagram: [UInt8], transactionID: [UInt8]) -> [UInt8] {
        let key = Array("1:t2:".utf8)
        guard transactionID.count == 2,
            let start = datagram.indices.first(where: { datagram[$0...].starts(with: key) }),
            start + key.count + 2 <= datagram.count
        else { return datagram }
        var patched = datagram
        patched.replaceSubrange((start + key.count)..<(start + key.count + 2), with: transactionID)
        return patched
    }

    private mutating func check() {
        for datagram in output.datagrams {
            precondition(datagram.bytes.count <= 1500, "datagram too large")
            guard let message = try? KRPCMessage.decode(datagram.bytes) else {
                preconditionFailure("sent garbage")
            }
            if case .query = message.body { lastQueryID[datagram.destination] = message.transactionID }
        }
        for case .otherFamilyNodes(let nodes) in output.events {
            precondition(node.wantsOtherFamilyNodes, "nodes handed over unasked")
            precondition(nodes.allSatisfy { $0.endpoint.family == .ipv6 }, "handed over a node of our family")
            sibling.learnNodes(nodes)
        }
        precondition(node.pendingQueryCount <= 64, "too many queries in flight")
        precondition(node.activeLookupCount <= 4, "too many lookups")
        precondition(node.routingTableNodeCount <= 8 * 160, "table overfull")
        output.removeAll()
    }
}
