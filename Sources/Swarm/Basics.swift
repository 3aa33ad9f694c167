import TorrentModel

/// An opaque handle for one connected peer, chosen by the engine.
///
/// Slots are small integers that the engine reuses after a peer leaves, like file descriptors; the swarm
/// types index arrays by them, so keep them dense (see `PeerSlot.maximumValue`).
public struct PeerSlot: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The largest slot value accepted: bounds the per-peer tables at a few MiB in the worst case.
    public static let maximumValue: UInt32 = 1 << 16

    /// The engine's number for the connection.
    public let value: UInt32

    /// A slot; `value` must not exceed `maximumValue` (a programmer error, not peer input).
    public init(_ value: UInt32) {
        precondition(value <= Self.maximumValue, "peer slot \(value) is above PeerSlot.maximumValue")
        self.value = value
    }

    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    public var description: String { "peer#\(value)" }
    var index: Int { Int(value) }
}

extension SeededRandom {
    /// A uniform integer in `0..<upperBound`.
    mutating func below(_ upperBound: Int) -> Int {
        precondition(upperBound > 0)
        return Int(next(upperBound: UInt64(upperBound)))
    }
}

/// The set of pieces a peer (or we) have: one bit per piece.
///
/// Invariants: `words.count == (count + 63) / 64`; bits at and beyond `count` are zero;
/// `setCount` is the number of one bits.
public struct PieceSet: Hashable, Sendable {
    /// How many pieces the torrent has (the size of the set's universe).
    public let count: Int
    private(set) var words: [UInt64]
    /// How many pieces are in the set.
    public private(set) var setCount: Int

    /// An empty set (`full == false`) or the set of all pieces (`full == true`, a seed's bitfield).
    public init(count: Int, full: Bool = false) {
        precondition(count >= 0)
        self.count = count
        words = [UInt64](repeating: full ? ~0 : 0, count: (count + 63) / 64)
        setCount = full ? count : 0
        if full, count % 64 != 0 { words[words.count - 1] = (1 << UInt64(count % 64)) - 1 }
    }

    /// A set from a BEP 3 `bitfield` payload (high bit of the first byte is piece 0), or nil if the
    /// payload has the wrong length or sets spare bits past the last piece.
    public init?(wireBytes: some Collection<UInt8>, count: Int) {
        guard wireBytes.count == (count + 7) / 8 else { return nil }
        self.init(count: count)
        var piece = 0
        for byte in wireBytes {
            var mask: UInt8 = 0x80
            while mask != 0 {
                if byte & mask != 0 {
                    guard piece < count else { return nil }
                    insert(PieceIndex(piece))
                }
                piece += 1
                mask >>= 1
            }
        }
    }

    /// No piece is in the set.
    public var isEmpty: Bool { setCount == 0 }
    /// Every piece is in the set (a seed's).
    public var isFull: Bool { setCount == count }

    /// Whether `piece` (which must be in range) is in the set.
    public func contains(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < count, "\(piece) is out of range")
        return words[piece.int >> 6] & (1 << UInt64(piece.int & 63)) != 0
    }

    /// Adds a piece; returns whether it was new.
    @discardableResult
    public mutating func insert(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < count, "\(piece) is out of range")
        let bit: UInt64 = 1 << UInt64(piece.int & 63)
        if words[piece.int >> 6] & bit != 0 { return false }
        words[piece.int >> 6] |= bit
        setCount += 1
        return true
    }

    /// Removes a piece; returns whether it was present.
    @discardableResult
    public mutating func remove(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < count, "\(piece) is out of range")
        let bit: UInt64 = 1 << UInt64(piece.int & 63)
        if words[piece.int >> 6] & bit == 0 { return false }
        words[piece.int >> 6] &= ~bit
        setCount -= 1
        return true
    }

    /// Whether this set and `other` share a piece; O(count / 64).
    public func intersects(_ other: PieceSet) -> Bool {
        precondition(other.count == count, "piece sets of different torrents")
        for i in words.indices where words[i] & other.words[i] != 0 { return true }
        return false
    }

    /// Calls `body` with each piece in the set, in index order.
    public func forEach(_ body: (PieceIndex) -> Void) {
        for (wordIndex, word) in words.enumerated() {
            var rest = word
            while rest != 0 {
                let bit = rest.trailingZeroBitCount
                body(PieceIndex(wordIndex * 64 + bit))
                rest &= rest - 1
            }
        }
    }
}
