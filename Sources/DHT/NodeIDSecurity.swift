import TorrentModel

/// BEP 42: node ids tied to the node's external IP, so that placing many nodes next to one infohash takes
/// many addresses. The first 21 bits of the id must equal the top of CRC32C over the masked IP with a
/// 3-bit `r` mixed in, and the id's last byte carries `r` in its low 3 bits.
public enum NodeIDSecurity {
    private static let ipv4Mask: [UInt8] = [0x03, 0x0f, 0x3f, 0xff]
    private static let ipv6Mask: [UInt8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff]

    /// The CRC32C that decides the id's prefix for `address` and `r` (only its low 3 bits count).
    static func prefixHash(for address: DHTIPAddress, r: UInt8) -> UInt32 {
        let bytes = address.bytes
        let mask = address.family == .ipv4 ? ipv4Mask : ipv6Mask
        var masked = zip(bytes, mask).map { $0 & $1 }
        masked[0] |= (r & 7) << 5
        return CRC32C.checksum(masked)
    }

    /// A valid id for `address`: the CRC prefix, then random bits, and `randomByte` (whose low 3 bits are
    /// `r`) as the last byte.
    public static func nodeID(
        for address: DHTIPAddress, randomByte: UInt8, using random: inout SeededRandom
    )
        -> NodeID
    {
        let crc = prefixHash(for: address, r: randomByte)
        var bytes = (0..<20).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes[0] = UInt8(truncatingIfNeeded: crc >> 24)
        bytes[1] = UInt8(truncatingIfNeeded: crc >> 16)
        bytes[2] = UInt8(truncatingIfNeeded: crc >> 8) & 0xf8 | bytes[2] & 0x07
        bytes[19] = randomByte
        return NodeID(bytes)!
    }

    /// A random valid id for `address`.
    public static func nodeID(for address: DHTIPAddress, using random: inout SeededRandom) -> NodeID {
        nodeID(for: address, randomByte: UInt8(truncatingIfNeeded: random.next()), using: &random)
    }

    /// Whether `id` is valid for `address` under BEP 42. Local addresses are exempt and always pass.
    public static func isValid(_ id: NodeID, for address: DHTIPAddress) -> Bool {
        if address.isLocal { return true }
        let bytes = id.bytes
        let crc = prefixHash(for: address, r: bytes[19])
        return bytes[0] == UInt8(truncatingIfNeeded: crc >> 24)
            && bytes[1] == UInt8(truncatingIfNeeded: crc >> 16)
            && bytes[2] & 0xf8 == UInt8(truncatingIfNeeded: crc >> 8) & 0xf8
    }
}

/// CRC-32C (Castagnoli), the checksum BEP 42 specifies, computed a byte at a time from a table.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82f6_3b78 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return ~crc
    }
}
