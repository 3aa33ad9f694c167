import TorrentModel

/// A point of the 160-bit DHT key space (a node id or an infohash) as three big-endian words, so that XOR
/// distances compare as unsigned integers with two or three word comparisons.
public struct DHTKey: Hashable, Comparable, Sendable {
    public var high: UInt64
    public var middle: UInt64
    public var low: UInt32

    init(high: UInt64, middle: UInt64, low: UInt32) {
        self.high = high
        self.middle = middle
        self.low = low
    }

    public init<Kind>(_ id: Bytes20<Kind>) {
        (high, middle, low) = id.withUnsafeBytes { raw in
            var high: UInt64 = 0
            var middle: UInt64 = 0
            var low: UInt32 = 0
            for i in 0..<8 { high = high << 8 | UInt64(raw[i]) }
            for i in 8..<16 { middle = middle << 8 | UInt64(raw[i]) }
            for i in 16..<20 { low = low << 8 | UInt32(raw[i]) }
            return (high, middle, low)
        }
    }

    static let maximum = DHTKey(high: .max, middle: .max, low: .max)

    var nodeID: NodeID {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20)
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: high >> shift))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: middle >> shift))
        }
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: low >> shift))
        }
        return NodeID(bytes)!
    }

    public static func ^ (a: DHTKey, b: DHTKey) -> DHTKey {
        DHTKey(high: a.high ^ b.high, middle: a.middle ^ b.middle, low: a.low ^ b.low)
    }

    public static func < (a: DHTKey, b: DHTKey) -> Bool {
        (a.high, a.middle, a.low) < (b.high, b.middle, b.low)
    }

    /// The number of leading zero bits (160 for zero): for a distance, the length of the prefix the two
    /// keys share, which is the routing-table bucket a node falls in.
    public var leadingZeroBitCount: Int {
        if high != 0 { return high.leadingZeroBitCount }
        if middle != 0 { return 64 + middle.leadingZeroBitCount }
        return 128 + min(32, low.leadingZeroBitCount)
    }

    /// Bit `index`, counted from the most significant (0) to the least (159).
    func bit(_ index: Int) -> Bool {
        switch index {
        case 0..<64: high >> (63 - index) & 1 == 1
        case 64..<128: middle >> (127 - index) & 1 == 1
        default: low >> (159 - index) & 1 == 1
        }
    }

    /// This key with its first `prefixLength` bits kept and the rest taken from `random`.
    func keepingPrefix(_ prefixLength: Int, randomBits random: DHTKey) -> DHTKey {
        let mask = DHTKey.prefixMask(prefixLength)
        return DHTKey(
            high: high & mask.high | random.high & ~mask.high,
            middle: middle & mask.middle | random.middle & ~mask.middle,
            low: low & mask.low | random.low & ~mask.low)
    }

    /// A key whose first `length` bits are ones.
    static func prefixMask(_ length: Int) -> DHTKey {
        func ones<T: FixedWidthInteger & UnsignedInteger>(_ count: Int, of _: T.Type) -> T {
            count <= 0 ? 0 : count >= T.bitWidth ? T.max : T.max << (T.bitWidth - count)
        }
        return DHTKey(
            high: ones(length, of: UInt64.self), middle: ones(length - 64, of: UInt64.self),
            low: ones(length - 128, of: UInt32.self))
    }

    /// The key with bit `index` inverted.
    func flipping(bit index: Int) -> DHTKey {
        self ^ (DHTKey.prefixMask(index + 1) ^ DHTKey.prefixMask(index))
    }

    static func random(using random: inout SeededRandom) -> DHTKey {
        DHTKey(high: random.next(), middle: random.next(), low: UInt32(truncatingIfNeeded: random.next()))
    }
}

extension Bytes20 {
    /// The Kademlia distance to `other` (XOR, read as an unsigned integer): smaller is closer.
    func distance<Other>(to other: Bytes20<Other>) -> DHTKey { DHTKey(self) ^ DHTKey(other) }
}
