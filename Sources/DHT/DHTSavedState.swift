import Bencode
import TorrentModel

/// What a node saves between runs (BEP 5: "the routing table should be saved"): its id and its table's
/// nodes, bencoded as `{"id": <20 bytes>, "nodes": <compact IPv4>, "nodes6": <compact IPv6>}`, plus
/// `"id6"` when the IPv6 node's id is another (BEP 32 prefers one id for both DHTs, but BEP 42 derives
/// each from that family's external address).
public struct DHTSavedState: Hashable, Sendable {
    /// Why saved bytes could not be read.
    public enum DecodingError: Error, Hashable, Sendable {
        case bencode(BencodeError)
        case missingID
        /// An `id6` that is not a 20-byte string.
        case malformedIPv6ID
        /// A node list whose length is not a whole number of entries, or of the wrong type.
        case malformedNodes
    }

    public var id: NodeID
    /// The IPv6 node's id when it is not `id`.
    public var ipv6ID: NodeID?
    public var nodes: [DHTNodeInfo]

    public init(id: NodeID, ipv6ID: NodeID? = nil, nodes: [DHTNodeInfo]) {
        self.id = id
        self.ipv6ID = ipv6ID == id ? nil : ipv6ID
        self.nodes = nodes
    }

    /// The id the node of `family` takes.
    public func id(for family: DHTAddressFamily) -> NodeID { family == .ipv6 ? ipv6ID ?? id : id }

    /// One state for both families' nodes: this one's id and the other's as `ipv6ID` (or `id`, when this
    /// one is the IPv6 node's), and the nodes of both tables.
    public func merged(withIPv6 other: DHTSavedState) -> DHTSavedState {
        DHTSavedState(id: id, ipv6ID: other.id, nodes: nodes + other.nodes)
    }

    /// Reads bytes from ``encoded()``.
    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        let document: BencodeDocument
        do {
            document = try BencodeDocument(
                bytes: bytes, limits: BencodeLimits(maxDepth: 2, maxElementCount: 16))
        } catch {
            throw .bencode(error)
        }
        guard let idBytes = document.root["id"]?.byteString, let id = NodeID(idBytes) else {
            throw .missingID
        }
        var nodes: [DHTNodeInfo] = []
        for (key, family) in [("nodes", DHTAddressFamily.ipv4), ("nodes6", .ipv6)] {
            guard let value = document.root[key] else { continue }
            guard let compact = value.byteString,
                let decoded = DHTNodeInfo.decodeCompactList(compact, family: family)
            else { throw .malformedNodes }
            nodes += decoded
        }
        var ipv6ID: NodeID?
        if let value = document.root["id6"] {
            guard let bytes = value.byteString, let id6 = NodeID(bytes) else { throw .malformedIPv6ID }
            ipv6ID = id6
        }
        self.init(id: id, ipv6ID: ipv6ID, nodes: nodes)
    }

    /// The bencoded form.
    public func encoded() -> [UInt8] {
        var ipv4: [UInt8] = []
        var ipv6: [UInt8] = []
        for node in nodes {
            if node.endpoint.family == .ipv4 {
                node.appendCompact(to: &ipv4)
            } else {
                node.appendCompact(to: &ipv6)
            }
        }
        var dictionary: [BencodeKey: BencodeValue] = ["id": .bytes(id.bytes)]
        if let ipv6ID { dictionary["id6"] = .bytes(ipv6ID.bytes) }
        if !ipv4.isEmpty { dictionary["nodes"] = .bytes(ipv4) }
        if !ipv6.isEmpty { dictionary["nodes6"] = .bytes(ipv6) }
        return BencodeValue.dictionary(dictionary).encoded()
    }
}
