import TorrentModel

/// Which pieces a peer has, in the wire layout of BEP 3: piece 0 is the high bit of byte 0, and the
/// spare bits after the last piece are zero.
///
/// Invariants: `bytes.count == PieceBitfield.byteCount(pieceCount:)`, spare bits are zero, and
/// `count` is the number of set bits.
public struct PieceBitfield: Hashable, Sendable {
    public let pieceCount: Int
    public private(set) var bytes: [UInt8]
    /// How many pieces are set.
    public private(set) var count: Int

    /// The wire size of a bitfield for `pieceCount` pieces: `ceil(pieceCount / 8)`.
    public static func byteCount(pieceCount: Int) -> Int { (pieceCount + 7) / 8 }

    /// An empty bitfield.
    public init(pieceCount: Int) {
        precondition(pieceCount >= 0, "negative piece count")
        self.pieceCount = pieceCount
        self.bytes = [UInt8](repeating: 0, count: Self.byteCount(pieceCount: pieceCount))
        self.count = 0
    }

    /// A bitfield from outside input, or nil if its size is not exactly `ceil(pieceCount / 8)` or a spare
    /// bit is set.
    public init?(wireBytes: some Collection<UInt8>, pieceCount: Int) {
        self.init(pieceCount: pieceCount)
        guard wireBytes.count == bytes.count else { return nil }
        var i = 0
        for byte in wireBytes {
            bytes[i] = byte
            i += 1
        }
        guard Self.spareBitsAreZero(bytes.span, pieceCount: pieceCount) else { return nil }
        count = bytes.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    public var isEmpty: Bool { count == 0 }
    public var isComplete: Bool { count == pieceCount }

    public func contains(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < pieceCount, "\(piece) is out of range")
        return bytes[piece.int >> 3] & Self.mask(piece.int) != 0
    }

    /// Sets a piece; returns whether it was newly set.
    @discardableResult
    public mutating func insert(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < pieceCount, "\(piece) is out of range")
        let mask = Self.mask(piece.int)
        guard bytes[piece.int >> 3] & mask == 0 else { return false }
        bytes[piece.int >> 3] |= mask
        count += 1
        return true
    }

    /// Sets every piece (BEP 6 have-all).
    public mutating func insertAll() {
        guard pieceCount > 0 else { return }
        for i in bytes.indices { bytes[i] = 0xff }
        bytes[bytes.count - 1] = Self.lastByteMask(pieceCount: pieceCount)
        count = pieceCount
    }

    /// Clears every piece (BEP 6 have-none).
    public mutating func removeAll() {
        for i in bytes.indices { bytes[i] = 0 }
        count = 0
    }

    /// Replaces the contents with validated wire bytes, without allocating.
    mutating func assign(validated wireBytes: Span<UInt8>) {
        precondition(wireBytes.count == bytes.count, "bitfield size was validated")
        var set = 0
        for i in 0..<wireBytes.count {
            bytes[i] = wireBytes[i]
            set += wireBytes[i].nonzeroBitCount
        }
        count = set
    }

    /// Whether the bits after the last piece are zero (BEP 3: "Spare bits at the end are set to zero").
    static func spareBitsAreZero(_ wireBytes: Span<UInt8>, pieceCount: Int) -> Bool {
        guard pieceCount % 8 != 0, !wireBytes.isEmpty else { return true }
        return wireBytes[wireBytes.count - 1] & ~lastByteMask(pieceCount: pieceCount) == 0
    }

    @inline(__always)
    private static func mask(_ index: Int) -> UInt8 { 0x80 >> UInt8(index & 7) }

    /// The bits of the last byte that name real pieces.
    private static func lastByteMask(pieceCount: Int) -> UInt8 {
        let used = pieceCount % 8
        return used == 0 ? 0xff : ~(0xff >> UInt8(used))
    }
}
