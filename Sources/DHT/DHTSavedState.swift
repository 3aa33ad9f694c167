import Bencode
import TorrentModel

/// What a node saves between runs (BEP 5: "the routing table should be saved"): its id and its table's
/// nodes, bencoded as `{"id": <20 bytes>, "nodes": <compact IPv4>, "nodes6": <compact IPv6>}`.
public struct DHTSavedState: Hashable, Sendable {
    /// Why saved bytes could not be read.
    public enum DecodingError: Error, Hashable, Sendable {
        case bencode(BencodeError)
        case missingID
        /// A node list whose length is not a whole number of entries, or of the wrong type.
        case malformedNodes
    }

    public var id: NodeID
    public var nodes: [DHTNodeInfo]

    public init(id: NodeID, nodes: [DHTNodeInfo]) {
        self.id = id
        self.nodes = nodes
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
        self.init(id: id, nodes: nodes)
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
        if !ipv4.isEmpty { dictionary["nodes"] = .bytes(ipv4) }
        if !ipv6.isEmpty { dictionary["nodes6"] = .bytes(ipv6) }
        return BencodeValue.dictionary(dictionary).encoded()
    }
}
