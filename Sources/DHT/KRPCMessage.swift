import Bencode
import TorrentModel

/// Which node lists a `find_node` or `get_peers` asker wants back (BEP 32's `want`); empty when the query
/// has no `want`, and then the answer carries the list of the family the query came over.
public struct KRPCWant: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `n4`: the IPv4 `nodes` list.
    public static let ipv4 = KRPCWant(rawValue: 1)
    /// `n6`: the IPv6 `nodes6` list.
    public static let ipv6 = KRPCWant(rawValue: 2)
}

/// A DHT query (BEP 5), each carrying the asker's node id.
public enum KRPCQuery: Hashable, Sendable {
    case ping(sender: NodeID)
    case findNode(sender: NodeID, target: NodeID, want: KRPCWant)
    case getPeers(sender: NodeID, infoHash: InfoHash, want: KRPCWant)
    /// `port` is meaningless (and may be 0) when `impliedPort` asks for the datagram's source port.
    case announcePeer(sender: NodeID, infoHash: InfoHash, port: UInt16, impliedPort: Bool, token: [UInt8])

    /// The asking node's id.
    public var sender: NodeID {
        switch self {
        case .ping(let sender), .findNode(let sender, _, _), .getPeers(let sender, _, _),
            .announcePeer(let sender, _, _, _, _):
            sender
        }
    }

    /// The method name on the wire.
    public var methodName: String {
        switch self {
        case .ping: "ping"
        case .findNode: "find_node"
        case .getPeers: "get_peers"
        case .announcePeer: "announce_peer"
        }
    }
}

/// A response's return values. KRPC responses do not name the query they answer, so every field a DHT
/// query can return is here and the asker reads the ones its query expects.
public struct KRPCResponse: Hashable, Sendable {
    /// The responding node's id.
    public var sender: NodeID
    /// Compact IPv4 node info (`nodes`).
    public var nodes: [DHTNodeInfo]
    /// Compact IPv6 node info (`nodes6`, BEP 32).
    public var nodes6: [DHTNodeInfo]
    /// Peers for the infohash asked about (`values`); IPv4 and IPv6 entries may be mixed.
    public var values: [DHTEndpoint]
    /// The write token a later `announce_peer` to this node must present.
    public var token: [UInt8]?

    public init(
        sender: NodeID, nodes: [DHTNodeInfo] = [], nodes6: [DHTNodeInfo] = [], values: [DHTEndpoint] = [],
        token: [UInt8]? = nil
    ) {
        self.sender = sender
        self.nodes = nodes
        self.nodes6 = nodes6
        self.values = values
        self.token = token
    }
}

/// KRPC error codes (BEP 5).
public enum KRPCErrorCode {
    public static let generic: Int64 = 201
    public static let server: Int64 = 202
    /// A malformed packet, invalid arguments or a bad token.
    public static let protocolError: Int64 = 203
    public static let methodUnknown: Int64 = 204
}

/// One KRPC datagram: a query, a response or an error, with its transaction id.
public struct KRPCMessage: Hashable, Sendable {
    public enum Body: Hashable, Sendable {
        case query(KRPCQuery)
        case response(KRPCResponse)
        case error(code: Int64, message: [UInt8])
    }

    /// Chosen by the asker and echoed in the answer.
    public var transactionID: [UInt8]
    public var body: Body
    /// BEP 42's top-level `ip`: the asker's address and port as the responder saw them.
    public var requesterEndpoint: DHTEndpoint?
    /// BEP 43's `ro`: the sender answers no queries and should not be added to routing tables.
    public var isReadOnly: Bool

    public init(
        transactionID: [UInt8], body: Body, requesterEndpoint: DHTEndpoint? = nil, isReadOnly: Bool = false
    ) {
        self.transactionID = transactionID
        self.body = body
        self.requesterEndpoint = requesterEndpoint
        self.isReadOnly = isReadOnly
    }

    /// The canonical bencoding.
    public func encoded() -> [UInt8] {
        var top: [BencodeKey: BencodeValue] = ["t": .bytes(transactionID)]
        switch body {
        case .query(let query):
            top["y"] = "q"
            top["q"] = .string(query.methodName)
            top["a"] = .dictionary(Self.arguments(of: query))
        case .response(let response):
            top["y"] = "r"
            top["r"] = .dictionary(Self.returnValues(of: response))
        case .error(let code, let message):
            top["y"] = "e"
            top["e"] = [.integer(code), .bytes(message)]
        }
        if let requesterEndpoint { top["ip"] = .bytes(requesterEndpoint.compact) }
        if isReadOnly { top["ro"] = 1 }
        return BencodeValue.dictionary(top).encoded()
    }

    private static func arguments(of query: KRPCQuery) -> [BencodeKey: BencodeValue] {
        var arguments: [BencodeKey: BencodeValue] = ["id": .bytes(query.sender.bytes)]
        switch query {
        case .ping:
            break
        case .findNode(_, let target, let want):
            arguments["target"] = .bytes(target.bytes)
            if let want = encoded(want) { arguments["want"] = want }
        case .getPeers(_, let infoHash, let want):
            arguments["info_hash"] = .bytes(infoHash.bytes)
            if let want = encoded(want) { arguments["want"] = want }
        case .announcePeer(_, let infoHash, let port, let impliedPort, let token):
            arguments["info_hash"] = .bytes(infoHash.bytes)
            arguments["port"] = .integer(Int64(port))
            arguments["token"] = .bytes(token)
            if impliedPort { arguments["implied_port"] = 1 }
        }
        return arguments
    }

    private static func encoded(_ want: KRPCWant) -> BencodeValue? {
        guard !want.isEmpty else { return nil }
        var list: [BencodeValue] = []
        if want.contains(.ipv4) { list.append("n4") }
        if want.contains(.ipv6) { list.append("n6") }
        return .list(list)
    }

    private static func returnValues(of response: KRPCResponse) -> [BencodeKey: BencodeValue] {
        var values: [BencodeKey: BencodeValue] = ["id": .bytes(response.sender.bytes)]
        for (key, nodes) in [("nodes", response.nodes), ("nodes6", response.nodes6)] where !nodes.isEmpty {
            var compact: [UInt8] = []
            for node in nodes { node.appendCompact(to: &compact) }
            values[BencodeKey(key)] = .bytes(compact)
        }
        if !response.values.isEmpty { values["values"] = .list(response.values.map { .bytes($0.compact) }) }
        if let token = response.token { values["token"] = .bytes(token) }
        return values
    }
}
