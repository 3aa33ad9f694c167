import Bencode
import TorrentModel

/// Bounds on what the KRPC decoder accepts from the network. Every datagram comes from an unauthenticated
/// source, so each dimension that could cost memory or work is capped.
public struct KRPCLimits: Hashable, Sendable {
    /// The largest datagram: 1,500 bytes, an Ethernet MTU; BEP 32 only promises 1,024.
    public var maxDatagramBytes: Int
    /// The longest transaction id: 16 bytes (clients use 2 to 8).
    public var maxTransactionIDBytes: Int
    /// The most entries in one `nodes` or `nodes6` list: 32 (nodes send 8).
    public var maxNodesPerList: Int
    /// The most peers in `values`: 200 (a 1,500-byte datagram holds about 180 IPv4 ones).
    public var maxValues: Int
    /// The longest write token: 64 bytes (clients use 4 to 20).
    public var maxTokenBytes: Int

    public init(
        maxDatagramBytes: Int = 1500, maxTransactionIDBytes: Int = 16, maxNodesPerList: Int = 32,
        maxValues: Int = 200, maxTokenBytes: Int = 64
    ) {
        self.maxDatagramBytes = maxDatagramBytes
        self.maxTransactionIDBytes = maxTransactionIDBytes
        self.maxNodesPerList = maxNodesPerList
        self.maxValues = maxValues
        self.maxTokenBytes = maxTokenBytes
    }
}

/// Why a datagram is not a KRPC message this node accepts.
public struct KRPCDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        case datagramTooLarge(byteCount: Int, limit: Int)
        case bencode(BencodeError)
        case notADictionary
        /// A required key is absent (`t`, `y`, `q`, `a`, `r`, `e`, `id`, ...).
        case missingKey(String)
        /// A key holds the wrong kind of value or a value of the wrong size.
        case invalidValue(key: String)
        case transactionIDTooLong(byteCount: Int, limit: Int)
        /// `y` is not `q`, `r` or `e`.
        case unknownMessageType
        /// A query whose method this node does not implement.
        case unknownMethod
        /// A `nodes` or `nodes6` string whose length is not a whole number of entries.
        case malformedCompactNodes(key: String)
        case tooManyNodes(count: Int, limit: Int)
        case tooManyValues(count: Int, limit: Int)
        /// A `values` entry that is not 6 or 18 bytes.
        case malformedPeer
        case tokenTooLong(byteCount: Int, limit: Int)
        /// An `announce_peer` port outside 1...65535 without `implied_port`.
        case portOutOfRange
    }

    public var reason: Reason
    /// For a query whose envelope was sound but whose contents were not: its transaction id, so that the
    /// node can answer with a KRPC error. Nil otherwise (no answer is owed).
    public var queryTransactionID: [UInt8]?

    public init(_ reason: Reason, queryTransactionID: [UInt8]? = nil) {
        self.reason = reason
        self.queryTransactionID = queryTransactionID
    }

    public var description: String { "KRPC: \(reason)" }
}

extension KRPCMessage {
    /// Decodes one datagram. Never traps: anything malformed or over `limits` is a ``KRPCDecodingError``.
    public static func decode(
        _ datagram: [UInt8], limits: KRPCLimits = KRPCLimits()
    ) throws(KRPCDecodingError) -> KRPCMessage {
        guard datagram.count <= limits.maxDatagramBytes else {
            throw KRPCDecodingError(
                .datagramTooLarge(byteCount: datagram.count, limit: limits.maxDatagramBytes))
        }
        // The deepest KRPC value is a string in `values` or `want`: top, `r`/`a`, list, string.
        var bencodeLimits = BencodeLimits(
            maxDepth: 4, maxElementCount: limits.maxValues + 64, maxInputBytes: limits.maxDatagramBytes)
        // Some clients send keys out of order; a datagram is read, never re-hashed, so order does not matter.
        bencodeLimits.allowsUnsortedKeys = true
        let document: BencodeDocument
        do {
            document = try BencodeDocument(bytes: datagram, limits: bencodeLimits)
        } catch {
            throw KRPCDecodingError(.bencode(error))
        }
        let root = document.root
        guard root.kind == .dictionary else { throw KRPCDecodingError(.notADictionary) }
        let transactionID = try Array(requiredString(root, "t"))
        guard transactionID.count <= limits.maxTransactionIDBytes else {
            throw KRPCDecodingError(
                .transactionIDTooLong(byteCount: transactionID.count, limit: limits.maxTransactionIDBytes))
        }
        let type = try requiredString(root, "y")
        var requesterEndpoint: DHTEndpoint?
        if let ip = root["ip"] {
            guard let compact = ip.byteString, let endpoint = DHTEndpoint(compact: compact) else {
                throw KRPCDecodingError(.invalidValue(key: "ip"))
            }
            requesterEndpoint = endpoint
        }
        let isReadOnly = root["ro"]?.integer == 1
        let body: Body
        // Compared as a `String`, which holds one this short inline: nothing is allocated.
        switch String(decoding: type, as: UTF8.self) {
        case "q":
            do {
                body = .query(try decodeQuery(root, limits: limits))
            } catch {
                throw KRPCDecodingError(error.reason, queryTransactionID: transactionID)
            }
        case "r":
            body = .response(try decodeResponse(root, limits: limits))
        case "e":
            guard let list = root["e"]?.list else { throw KRPCDecodingError(.missingKey("e")) }
            let elements = Array(list)
            guard let code = elements.first?.integer else { throw KRPCDecodingError(.invalidValue(key: "e")) }
            let message = elements.dropFirst().first?.byteString ?? []
            body = .error(code: code, message: Array(message))
        default:
            throw KRPCDecodingError(.unknownMessageType)
        }
        return KRPCMessage(
            transactionID: transactionID, body: body, requesterEndpoint: requesterEndpoint,
            isReadOnly: isReadOnly)
    }

    private static func decodeQuery(
        _ root: BencodeNode, limits: KRPCLimits
    ) throws(KRPCDecodingError) -> KRPCQuery {
        let method = try requiredString(root, "q")
        guard let arguments = root["a"], arguments.kind == .dictionary else {
            throw KRPCDecodingError(.missingKey("a"))
        }
        let sender: NodeID = try requiredID(arguments, "id")
        switch String(decoding: method, as: UTF8.self) {
        case "ping":
            return .ping(sender: sender)
        case "find_node":
            return .findNode(
                sender: sender, target: try requiredID(arguments, "target"), want: want(arguments))
        case "get_peers":
            return .getPeers(
                sender: sender, infoHash: try requiredID(arguments, "info_hash"), want: want(arguments))
        case "announce_peer":
            let infoHash: InfoHash = try requiredID(arguments, "info_hash")
            let token = try requiredString(arguments, "token")
            guard token.count <= limits.maxTokenBytes else {
                throw KRPCDecodingError(.tokenTooLong(byteCount: token.count, limit: limits.maxTokenBytes))
            }
            let impliedPort = (arguments["implied_port"]?.integer ?? 0) != 0
            let port = arguments["port"]?.integer
            let validPort = port.flatMap { (1...65535).contains($0) ? UInt16($0) : nil }
            guard impliedPort || validPort != nil else { throw KRPCDecodingError(.portOutOfRange) }
            return .announcePeer(
                sender: sender, infoHash: infoHash, port: validPort ?? 0, impliedPort: impliedPort,
                token: Array(token))
        default:
            throw KRPCDecodingError(.unknownMethod)
        }
    }

    private static func decodeResponse(
        _ root: BencodeNode, limits: KRPCLimits
    ) throws(KRPCDecodingError) -> KRPCResponse {
        guard let values = root["r"], values.kind == .dictionary else {
            throw KRPCDecodingError(.missingKey("r"))
        }
        var response = KRPCResponse(sender: try requiredID(values, "id"))
        response.nodes = try nodeList(values, "nodes", family: .ipv4, limits: limits)
        response.nodes6 = try nodeList(values, "nodes6", family: .ipv6, limits: limits)
        if let token = values["token"] {
            guard let bytes = token.byteString else { throw KRPCDecodingError(.invalidValue(key: "token")) }
            guard bytes.count <= limits.maxTokenBytes else {
                throw KRPCDecodingError(.tokenTooLong(byteCount: bytes.count, limit: limits.maxTokenBytes))
            }
            response.token = Array(bytes)
        }
        if let peers = values["values"] {
            guard let list = peers.list else { throw KRPCDecodingError(.invalidValue(key: "values")) }
            guard list.count <= limits.maxValues else {
                throw KRPCDecodingError(.tooManyValues(count: list.count, limit: limits.maxValues))
            }
            for entry in list {
                guard let compact = entry.byteString, let peer = DHTEndpoint(compact: compact) else {
                    throw KRPCDecodingError(.malformedPeer)
                }
                response.values.append(peer)
            }
        }
        return response
    }

    private static func nodeList(
        _ dictionary: BencodeNode, _ key: String, family: DHTAddressFamily, limits: KRPCLimits
    ) throws(KRPCDecodingError) -> [DHTNodeInfo] {
        guard let value = dictionary[key] else { return [] }
        guard let bytes = value.byteString else { throw KRPCDecodingError(.invalidValue(key: key)) }
        let count = bytes.count / family.compactNodeByteCount
        guard count <= limits.maxNodesPerList else {
            throw KRPCDecodingError(.tooManyNodes(count: count, limit: limits.maxNodesPerList))
        }
        guard let nodes = DHTNodeInfo.decodeCompactList(bytes, family: family) else {
            throw KRPCDecodingError(.malformedCompactNodes(key: key))
        }
        return nodes
    }

    private static func want(_ arguments: BencodeNode) -> KRPCWant {
        var want: KRPCWant = []
        guard let list = arguments["want"]?.list else { return want }
        // BEP 32: unknown strings, and here anything that is not a string, are ignored.
        for entry in list {
            switch entry.string {
            case "n4": want.insert(.ipv4)
            case "n6": want.insert(.ipv6)
            default: break
            }
        }
        return want
    }

    private static func requiredString(
        _ dictionary: BencodeNode, _ key: String
    ) throws(KRPCDecodingError) -> ArraySlice<UInt8> {
        guard let value = dictionary[key] else { throw KRPCDecodingError(.missingKey(key)) }
        guard let bytes = value.byteString else { throw KRPCDecodingError(.invalidValue(key: key)) }
        return bytes
    }

    private static func requiredID<Kind>(
        _ dictionary: BencodeNode, _ key: String
    ) throws(KRPCDecodingError) -> Bytes20<Kind> {
        guard let id = Bytes20<Kind>(try requiredString(dictionary, key)) else {
            throw KRPCDecodingError(.invalidValue(key: key))
        }
        return id
    }
}
