/// A peer's IP address and port, as the compact peer formats carry them (BEP 11's `added`, BEP 23's
/// `peers`): 4 address bytes and a big-endian port for IPv4, 16 and a port for IPv6.
public struct PeerAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// An IPv4 or IPv6 address, stored inline (big-endian numbers of its bytes).
    public enum Host: Hashable, Comparable, Sendable, CustomStringConvertible {
        case ipv4(UInt32)
        case ipv6(high: UInt64, low: UInt64)

        /// An address from its 4 or 16 bytes in network order, or nil for another count.
        public init?(bytes: some Collection<UInt8>) {
            switch bytes.count {
            case 4: self = .ipv4(UInt32(truncatingIfNeeded: Self.bigEndian(bytes)))
            case 16:
                self = .ipv6(high: Self.bigEndian(bytes.prefix(8)), low: Self.bigEndian(bytes.dropFirst(8)))
            default: return nil
            }
        }

        private static func bigEndian(_ bytes: some Collection<UInt8>) -> UInt64 {
            bytes.reduce(0) { $0 << 8 | UInt64($1) }
        }

        /// The 4 or 16 bytes in network order.
        public var bytes: [UInt8] {
            switch self {
            case .ipv4(let value):
                var out: [UInt8] = []
                out.appendBigEndian(value)
                return out
            case .ipv6(let high, let low):
                var out: [UInt8] = []
                out.appendBigEndian(high)
                out.appendBigEndian(low)
                return out
            }
        }

        /// Whether no peer can be reached at this address: unspecified (`0.0.0.0/8`, `::`), multicast
        /// (`224.0.0.0/4`, `ff00::/8`), the IPv4 broadcast address, or an IPv4-mapped or -compatible IPv6
        /// address (such a peer belongs in the IPv4 lists).
        public var isUnroutable: Bool {
            switch self {
            case .ipv4(let value):
                return value >> 24 == 0 || value >> 28 == 0xe || value == .max
            case .ipv6(let high, let low):
                let multicast = high >> 56 == 0xff
                let embedsIPv4 = high == 0 && (low >> 32 == 0xffff || low >> 32 == 0)
                return multicast || embedsIPv4
            }
        }

        public var description: String {
            switch self {
            case .ipv4(let value):
                return (0..<4).map { String(value >> (24 - 8 * $0) & 0xff) }.joined(separator: ".")
            case .ipv6:
                let bytes = bytes
                return stride(from: 0, to: 16, by: 2).map {
                    String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
                }.joined(separator: ":")
            }
        }
    }

    public var host: Host
    public var port: UInt16

    public init(host: Host, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Whether the address is IPv6.
    public var isIPv6: Bool {
        if case .ipv6 = host { return true }
        return false
    }

    /// The bytes of one compact entry: 6 for IPv4, 18 for IPv6.
    public var compactByteCount: Int { isIPv6 ? 18 : 6 }

    /// Appends the compact entry: the address bytes, then the port, big-endian.
    public func appendCompact(to out: inout [UInt8]) {
        switch host {
        case .ipv4(let value): out.appendBigEndian(value)
        case .ipv6(let high, let low):
            out.appendBigEndian(high)
            out.appendBigEndian(low)
        }
        out.appendBigEndian(port)
    }

    /// One compact entry of exactly 6 or 18 bytes, or nil for another count.
    public init?(compact bytes: some Collection<UInt8>) {
        let entry = Array(bytes)
        guard entry.count == 6 || entry.count == 18, let host = Host(bytes: entry.dropLast(2)) else {
            return nil
        }
        self.init(host: host, port: UInt16(entry[entry.count - 2]) << 8 | UInt16(entry[entry.count - 1]))
    }

    public static func < (a: Self, b: Self) -> Bool { (a.host, a.port) < (b.host, b.port) }

    /// `a.b.c.d:port` or `[x:x:…:x]:port` (IPv6 without zero compression).
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
