import DHT
import TorrentModel

/// How a simulated node answers the `find_node` and `get_peers` queries it receives (its other messages,
/// pings included, are a real node's, so misbehaving nodes get into routing tables).
public enum Behaviour: Hashable, Sendable {
    case honest
    /// Answers with bytes that do not decode: random bytes, a truncated answer, or a well-formed
    /// dictionary whose id is 5 bytes long.
    case garbage
    /// Answers with K made-up nodes whose ids are all but equal to the target: half at addresses where
    /// no node listens, half at the addresses of real nodes (which answer with their own ids).
    case liar
}

extension DHTSimulation {
    /// Rewrites the answer node `index` gave to the query in `bytes`, as its behaviour says.
    mutating func misbehave(
        _ index: Int, answering bytes: [UInt8], from source: DHTEndpoint, output: inout DHTOutput
    ) {
        guard let query = try? KRPCMessage.decode(bytes), case .query(let body) = query.body else { return }
        let target: NodeID
        switch body {
        case .findNode(_, let wanted, _): target = wanted
        case .getPeers(_, let infoHash, _): target = NodeID(reinterpreting: infoHash)
        default: return
        }
        for position in output.datagrams.indices where output.datagrams[position].destination == source {
            guard var answer = try? KRPCMessage.decode(output.datagrams[position].bytes),
                answer.transactionID == query.transactionID, case .response(var response) = answer.body
            else { continue }
            switch behaviours[index] {
            case .honest:
                return
            case .garbage:
                output.datagrams[position].bytes = garbage(
                    answering: query.transactionID, real: output.datagrams[position].bytes)
            case .liar:
                response.nodes = (0..<8).map { number in madeUpNode(near: target, number: number) }
                answer.body = .response(response)
                output.datagrams[position].bytes = answer.encoded()
            }
        }
    }

    private mutating func garbage(answering transactionID: [UInt8], real: [UInt8]) -> [UInt8] {
        switch random.next(upperBound: UInt64(3)) {
        case 0:
            return (0..<(20 + Int(random.next(upperBound: UInt64(200))))).map { _ in
                UInt8(truncatingIfNeeded: random.next())
            }
        case 1:
            return Array(real.prefix(Int(random.next(upperBound: UInt64(real.count)))))
        default:
            let t = Array("1:t\(transactionID.count):".utf8) + transactionID
            return Array("d1:rd2:id5:abcdee".utf8) + t + Array("1:y1:re".utf8)
        }
    }

    /// An id sharing 150 bits with `target`, at an address where nothing listens (even `number`) or at a
    /// random live node's (odd `number`).
    private mutating func madeUpNode(near target: NodeID, number: Int) -> DHTNodeInfo {
        var bytes = target.bytes
        bytes[19] = UInt8(truncatingIfNeeded: random.next())
        bytes[18] ^= UInt8(truncatingIfNeeded: random.next()) & 0x03
        let endpoint: DHTEndpoint
        if number % 2 == 0 {
            endpoint = DHTEndpoint(
                address: .v4(0x2b00_0001 | UInt32(random.next(upperBound: UInt64(1 << 16))) << 8), port: 6881)
        } else {
            endpoint = endpoints[Int(random.next(upperBound: UInt64(endpoints.count)))]
        }
        return DHTNodeInfo(id: NodeID(bytes)!, endpoint: endpoint)
    }
}
