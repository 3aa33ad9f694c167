import TorrentModel

/// The pieces known to be on disk and to match their hashes: what recheck finds and resume data keeps.
///
/// Stored in the BEP 3 bitfield layout (piece 0 is the high bit of byte 0) so resume files carry it as
/// it is.
///
/// Invariants: `bitfield.count == (pieceCount + 7) / 8`; the spare bits after the last piece are zero;
/// `count` is the number of set bits.
public struct VerifiedPieces: Hashable, Sendable {
    /// How many pieces the torrent has.
    public let pieceCount: Int
    /// The set in BEP 3 bitfield layout.
    public private(set) var bitfield: [UInt8]
    /// How many pieces are verified.
    public private(set) var count: Int

    /// No piece verified.
    public init(pieceCount: Int) {
        precondition(pieceCount >= 0, "negative piece count")
        self.pieceCount = pieceCount
        bitfield = [UInt8](repeating: 0, count: (pieceCount + 7) / 8)
        count = 0
    }

    /// A set from stored bytes, or nil when the length is wrong or a spare bit is set (a sign the bytes
    /// were not written for this torrent).
    public init?(bitfield bytes: some Collection<UInt8>, pieceCount: Int) {
        guard pieceCount >= 0, bytes.count == (pieceCount + 7) / 8 else { return nil }
        self.pieceCount = pieceCount
        bitfield = Array(bytes)
        if pieceCount % 8 != 0, let last = bitfield.last, last & (0xFF >> UInt8(pieceCount % 8)) != 0 {
            return nil
        }
        count = bitfield.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    /// Whether every piece is verified.
    public var isComplete: Bool { count == pieceCount }

    /// Whether `piece` is verified; false for a piece out of range.
    public func contains(_ piece: PieceIndex) -> Bool {
        guard piece.int < pieceCount else { return false }
        return bitfield[piece.int >> 3] & Self.mask(piece) != 0
    }

    /// Marks `piece` verified; returns whether it was not before.
    @discardableResult
    public mutating func insert(_ piece: PieceIndex) -> Bool {
        precondition(piece.int < pieceCount, "\(piece) is out of range")
        guard !contains(piece) else { return false }
        bitfield[piece.int >> 3] |= Self.mask(piece)
        count += 1
        return true
    }

    /// Marks `piece` unverified; returns whether it was verified.
    @discardableResult
    public mutating func remove(_ piece: PieceIndex) -> Bool {
        guard contains(piece) else { return false }
        bitfield[piece.int >> 3] &= ~Self.mask(piece)
        count -= 1
        return true
    }

    /// The verified pieces in increasing order.
    public var pieces: [PieceIndex] {
        (0..<pieceCount).map { PieceIndex($0) }.filter { contains($0) }
    }

    private static func mask(_ piece: PieceIndex) -> UInt8 { 0x80 >> UInt8(piece.int & 7) }
}
