/// A set of a torrent's pieces: what a peer has, what we have verified, what the picker wants.
///
/// Stored as 64-bit words whose big-endian bytes are the BEP 3 bitfield (piece 0 is the high bit of
/// byte 0), so the wire form is a byte swap away and set operations go a word at a time.
///
/// Invariants: `words.count == (pieceCount + 63) / 64`; bits for pieces at and beyond `pieceCount`
/// are zero; `count` is the number of pieces in the set.
public struct PieceSet: Hashable, Sendable {
    /// How many pieces the torrent has (the set's universe).
    public let pieceCount: Int
    /// How many pieces are in the set.
    public private(set) var count: Int
    private var words: [UInt64]

    /// An empty set, or with `full` every piece (a seed's).
    public init(pieceCount: Int, full: Bool = false) {
        precondition(pieceCount >= 0, "negative piece count")
        self.pieceCount = pieceCount
        words = [UInt64](repeating: 0, count: (pieceCount + 63) / 64)
        count = 0
        if full { insertAll() }
    }

    /// A set from a BEP 3 bitfield (outside input), or nil if it is not exactly `ceil(pieceCount / 8)`
    /// bytes or sets a spare bit after the last piece.
    public init?(wireBytes: some Collection<UInt8>, pieceCount: Int) {
        self.init(pieceCount: pieceCount)
        let bytes = Array(wireBytes)
        guard bytes.count == Self.wireByteCount(pieceCount: pieceCount),
            Self.spareBitsAreZero(bytes.span, pieceCount: pieceCount)
        else { return nil }
        assign(validatedWireBytes: bytes.span)
    }

    /// The size of a BEP 3 bitfield for `pieceCount` pieces: `ceil(pieceCount / 8)`.
    public static func wireByteCount(pieceCount: Int) -> Int { (pieceCount + 7) / 8 }

    /// Whether the bits after the last piece are zero (BEP 3: "Spare bits at the end are set to zero").
    public static func spareBitsAreZero(_ wireBytes: Span<UInt8>, pieceCount: Int) -> Bool {
        guard pieceCount % 8 != 0, !wireBytes.isEmpty else { return true }
        let used = pieceCount % 8
        return wireBytes[wireBytes.count - 1] & (0xff >> UInt8(used)) == 0
    }

    /// The set as a BEP 3 bitfield.
    public var wireBytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.wireByteCount(pieceCount: pieceCount))
        for (index, word) in words.enumerated() {
            withUnsafeBytes(of: word.bigEndian) { wordBytes in
                let start = index * 8
                for offset in 0..<min(8, bytes.count - start) { bytes[start + offset] = wordBytes[offset] }
            }
        }
        return bytes
    }

    /// Replaces the contents with a bitfield already checked for size and spare bits, without
    /// allocating.
    public mutating func assign(validatedWireBytes bytes: Span<UInt8>) {
        precondition(bytes.count == Self.wireByteCount(pieceCount: pieceCount), "bitfield size was validated")
        var total = 0
        for index in words.indices {
            var word: UInt64 = 0
            for offset in 0..<8 {
                let byteIndex = index * 8 + offset
                word <<= 8
                if byteIndex < bytes.count { word |= UInt64(bytes[byteIndex]) }
            }
            words[index] = word
            total += word.nonzeroBitCount
        }
        count = total
    }

    /// No piece is in the set.
    public var isEmpty: Bool { count == 0 }
    /// Every piece is in the set.
    public var isComplete: Bool { count == pieceCount }

    /// Whether `piece` is in the set; false for a piece out of range.
    public func contains(_ piece: PieceIndex) -> Bool {
        guard piece.int < pieceCount else { return false }
        return words[piece.int >> 6] & Self.bit(piece) != 0
    }

    /// Adds a piece (which must be in range); returns whether it was new.
    @discardableResult
    public mutating func insert(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < pieceCount, "\(piece) is out of range")
        let bit = Self.bit(piece)
        if words[piece.int >> 6] & bit != 0 { return false }
        words[piece.int >> 6] |= bit
        count += 1
        return true
    }

    /// Removes a piece (which must be in range); returns whether it was there.
    @discardableResult
    public mutating func remove(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < pieceCount, "\(piece) is out of range")
        let bit = Self.bit(piece)
        if words[piece.int >> 6] & bit == 0 { return false }
        words[piece.int >> 6] &= ~bit
        count -= 1
        return true
    }

    /// Adds every piece (BEP 6 have-all).
    public mutating func insertAll() {
        for index in words.indices { words[index] = ~0 }
        if pieceCount % 64 != 0 { words[words.count - 1] = ~(~UInt64(0) >> UInt64(pieceCount % 64)) }
        count = pieceCount
    }

    /// Removes every piece (BEP 6 have-none).
    public mutating func removeAll() {
        for index in words.indices { words[index] = 0 }
        count = 0
    }

    /// Whether this set and `other` share a piece; a word at a time.
    public func intersects(_ other: PieceSet) -> Bool {
        precondition(other.pieceCount == pieceCount, "piece sets of different torrents")
        for index in words.indices where words[index] & other.words[index] != 0 { return true }
        return false
    }

    /// Whether every piece of this set is in `other`; a word at a time.
    public func isSubset(of other: PieceSet) -> Bool {
        precondition(other.pieceCount == pieceCount, "piece sets of different torrents")
        for index in words.indices where words[index] & ~other.words[index] != 0 { return false }
        return true
    }

    /// Calls `body` with each piece in the set, in index order.
    public func forEach(_ body: (PieceIndex) -> Void) {
        for (index, word) in words.enumerated() {
            var rest = word
            while rest != 0 {
                let offset = rest.leadingZeroBitCount
                body(PieceIndex(index * 64 + offset))
                rest &= ~(UInt64(1) << UInt64(63 - offset))
            }
        }
    }

    /// The pieces in the set, in index order.
    public var pieces: [PieceIndex] {
        var result: [PieceIndex] = []
        result.reserveCapacity(count)
        forEach { result.append($0) }
        return result
    }

    /// Piece `i` is bit `63 - i % 64` of word `i / 64`: big-endian words read as the wire's bytes.
    @inline(__always)
    private static func bit(_ piece: PieceIndex) -> UInt64 { UInt64(1) << UInt64(63 - piece.int & 63) }
}
