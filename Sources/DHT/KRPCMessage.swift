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

    /// The canonical bencoding, written key by key in the order BEP 3 sorts them (a node sends one for
    /// every query of every lookup; building a dictionary to sort was most of that cost).
    public func encoded() -> [UInt8] {
        var writer = BencodeWriter(reservingCapacity: 128)
        writer.beginDictionary()
        switch body {
        case .query(let query):
            writer.key("a")
            Self.writeArguments(of: query, to: &writer)
        case .error(let code, let message):
            writer.key("e")
            writer.beginList()
            writer.integer(code)
            writer.string(message)
            writer.end()
        case .response:
            break
        }
        if let requesterEndpoint {
            writer.key("ip")
            writer.string(requesterEndpoint.compact)
        }
        switch body {
        case .query(let query):
            writer.key("q")
            writer.string(query.methodName)
        case .response(let response):
            writer.key("r")
            Self.writeReturnValues(of: response, to: &writer)
        case .error:
            break
        }
        if isReadOnly {
            writer.key("ro")
            writer.integer(1)
        }
        writer.key("t")
        writer.string(transactionID)
        writer.key("y")
        switch body {
        case .query: writer.key("q")
        case .response: writer.key("r")
        case .error: writer.key("e")
        }
        writer.end()
        return writer.bytes
    }

    /// Keys in order: `id`, `implied_port`, `info_hash`, `port`, `target`, `token`, `want`.
    private static func writeArguments(of query: KRPCQuery, to writer: inout BencodeWriter) {
        writer.beginDictionary()
        writer.key("id")
        query.sender.withUnsafeBytes { writer.string($0) }
        switch query {
        case .ping:
            break
        case .findNode(_, let target, let want):
            writer.key("target")
            target.withUnsafeBytes { writer.string($0) }
            write(want, to: &writer)
        case .getPeers(_, let infoHash, let want):
            writer.key("info_hash")
            infoHash.withUnsafeBytes { writer.string($0) }
            write(want, to: &writer)
        case .announcePeer(_, let infoHash, let port, let impliedPort, let token):
            if impliedPort {
                writer.key("implied_port")
                writer.integer(1)
            }
            writer.key("info_hash")
            infoHash.withUnsafeBytes { writer.string($0) }
            writer.key("port")
            writer.integer(Int64(port))
            writer.key("token")
            writer.string(token)
        }
        writer.end()
    }

    private static func write(_ want: KRPCWant, to writer: inout BencodeWriter) {
        guard !want.isEmpty else { return }
        writer.key("want")
        writer.beginList()
        if want.contains(.ipv4) { writer.key("n4") }
        if want.contains(.ipv6) { writer.key("n6") }
        writer.end()
    }

    /// Keys in order: `id`, `nodes`, `nodes6`, `token`, `values`.
    private static func writeReturnValues(of response: KRPCResponse, to writer: inout BencodeWriter) {
        writer.beginDictionary()
        writer.key("id")
        response.sender.withUnsafeBytes { writer.string($0) }
        if !response.nodes.isEmpty {
            writer.key("nodes")
            writer.string(compact(response.nodes))
        }
        if !response.nodes6.isEmpty {
            writer.key("nodes6")
            writer.string(compact(response.nodes6))
        }
        if let token = response.token {
            writer.key("token")
            writer.string(token)
        }
        if !response.values.isEmpty {
            writer.key("values")
            writer.beginList()
            for value in response.values { writer.string(value.compact) }
            writer.end()
        }
        writer.end()
    }

    private static func compact(_ nodes: [DHTNodeInfo]) -> [UInt8] {
        var compact: [UInt8] = []
        for node in nodes { node.appendCompact(to: &compact) }
        return compact
    }
}
