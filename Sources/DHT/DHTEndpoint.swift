import TorrentModel

/// The address family of a DHT: BEP 32 keeps the IPv4 and IPv6 DHTs apart, each with its own routing
/// table, so one ``DHTNode`` serves one family.
public enum DHTAddressFamily: Hashable, Sendable {
    case ipv4
    case ipv6

    /// Bytes of compact node info: a 20-byte id, the address and a 2-byte port (26 or 38).
    public var compactNodeByteCount: Int { 20 + compactEndpointByteCount }
    /// Bytes of compact peer info: the address and a 2-byte port (6 or 18).
    public var compactEndpointByteCount: Int { self == .ipv4 ? 6 : 18 }
}

/// An IP address, stored inline so that endpoints hash and compare without allocating.
public enum DHTIPAddress: Hashable, Sendable, CustomStringConvertible {
    /// An IPv4 address in host order (`10.0.0.1` is `0x0a00_0001`).
    case v4(UInt32)
    /// An IPv6 address as its high and low 64 bits in host order.
    case v6(high: UInt64, low: UInt64)

    /// 4 or 16 bytes in network order, or nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high: high, low: low)
        default:
            return nil
        }
    }

    public var family: DHTAddressFamily {
        if case .v4 = self { .ipv4 } else { .ipv6 }
    }

    /// The address in network order (4 or 16 bytes).
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }

    func append(to out: inout [UInt8]) {
        switch self {
        case .v4(let value):
            for shift in stride(from: 24, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: value >> shift))
            }
        case .v6(let high, let low):
            for word in [high, low] {
                for shift in stride(from: 56, through: 0, by: -8) {
                    out.append(UInt8(truncatingIfNeeded: word >> shift))
                }
            }
        }
    }

    /// What one host usually holds: an IPv4 address, an IPv6 /64 (counting each IPv6 address would give
    /// a host 2⁶⁴ of everything counted per address).
    var host: DHTIPAddress {
        switch self {
        case .v4: self
        case .v6(let high, _): .v6(high: high, low: 0)
        }
    }

    /// The network an operator is likely to control as a whole (an IPv4 /24, an IPv6 /64), used to keep
    /// one party from filling a bucket.
    var subnet: DHTIPAddress {
        switch self {
        case .v4(let value): .v4(value & 0xffff_ff00)
        case .v6(let high, _): .v6(high: high, low: 0)
        }
    }

    /// Whether BEP 42 exempts the address from node-id verification: private, link-local and loopback
    /// IPv4 ranges, and IPv6 loopback, link-local and unique-local ones.
    public var isLocal: Bool {
        switch self {
        case .v4(let value):
            value >> 24 == 10 || value >> 20 == 0xac1 || value >> 16 == 0xc0a8 || value >> 16 == 0xa9fe
                || value >> 24 == 127
        case .v6(let high, let low):
            (high == 0 && low == 1) || high >> 54 == 0x3fa || high >> 57 == 0x7e
        }
    }

    public var description: String {
        switch self {
        case .v4(let value):
            "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
        case .v6(let high, let low):
            [high >> 48, high >> 32, high >> 16, high, low >> 48, low >> 32, low >> 16, low]
                .map { String($0 & 0xffff, radix: 16) }.joined(separator: ":")
        }
    }
}

/// A UDP endpoint: where a DHT node listens, or where a peer accepts BitTorrent connections. The engine
/// converts to and from its socket address type; this module does no I/O.
public struct DHTEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: DHTIPAddress
    public var port: UInt16

    public init(address: DHTIPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Compact peer info: 6 bytes (IPv4) or 18 bytes (IPv6), address then port, both big-endian.
    public init?(compact bytes: some Collection<UInt8>) {
        guard bytes.count == 6 || bytes.count == 18, let address = DHTIPAddress(bytes: bytes.dropLast(2))
        else {
            return nil
        }
        let port = bytes.suffix(2).reduce(UInt16(0)) { $0 << 8 | UInt16($1) }
        self.init(address: address, port: port)
    }

    public var family: DHTAddressFamily { address.family }

    /// Compact peer info (the inverse of ``init(compact:)``).
    public var compact: [UInt8] {
        var out: [UInt8] = []
        appendCompact(to: &out)
        return out
    }

    func appendCompact(to out: inout [UInt8]) {
        address.append(to: &out)
        out.append(UInt8(port >> 8))
        out.append(UInt8(port & 0xff))
    }

    public var description: String {
        family == .ipv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}

/// A DHT node as the protocol names it: its id and where it listens ("compact node info").
public struct DHTNodeInfo: Hashable, Sendable {
    public var id: NodeID
    public var endpoint: DHTEndpoint

    public init(id: NodeID, endpoint: DHTEndpoint) {
        self.id = id
        self.endpoint = endpoint
    }

    func appendCompact(to out: inout [UInt8]) {
        out.append(contentsOf: id.bytes)
        endpoint.appendCompact(to: &out)
    }

    /// Splits a `nodes` or `nodes6` string into node infos; nil unless its length is a whole number of
    /// entries for `family`.
    static func decodeCompactList(_ bytes: ArraySlice<UInt8>, family: DHTAddressFamily) -> [DHTNodeInfo]? {
        let stride = family.compactNodeByteCount
        guard bytes.count % stride == 0 else { return nil }
        var nodes: [DHTNodeInfo] = []
        nodes.reserveCapacity(bytes.count / stride)
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let entry = bytes[start..<(start + stride)]
            guard let id = NodeID(entry.prefix(20)), let endpoint = DHTEndpoint(compact: entry.dropFirst(20))
            else { return nil }
            nodes.append(DHTNodeInfo(id: id, endpoint: endpoint))
            start += stride
        }
        return nodes
    }
}
