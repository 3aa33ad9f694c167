/// A block: a byte range inside one piece, the unit of request and transfer.
public struct BlockRange: Hashable, Sendable, CustomStringConvertible {
    public let piece: PieceIndex
    public let offset: UInt32
    public let length: UInt32

    public init(piece: PieceIndex, offset: UInt32, length: UInt32) {
        self.piece = piece
        self.offset = offset
        self.length = length
    }

    public var description: String { "\(piece) [\(offset), +\(length))" }
}

/// The one place that does piece and block arithmetic for a torrent.
///
/// Invariants: `pieceLength > 0`, `totalLength >= 0`, `pieceCount == ceil(totalLength / pieceLength)`;
/// every piece but the last is `pieceLength` long; the last is the remainder (never empty).
public struct PieceGeometry: Hashable, Sendable {
    /// The standard request size (BEP 3: 16 KiB; BEP 52 fixes it for v2).
    public static let standardBlockLength: UInt32 = 16 * 1024
    /// The largest block a peer may ask for; libtorrent and Transmission reject larger requests too.
    public static let maximumRequestLength: UInt32 = 128 * 1024

    public let totalLength: Int64
    public let pieceLength: Int
    public let pieceCount: Int
    public let blockLength: UInt32

    public init(totalLength: Int64, pieceLength: Int, blockLength: UInt32 = PieceGeometry.standardBlockLength)
    {
        precondition(pieceLength > 0 && totalLength >= 0 && blockLength > 0, "invalid piece geometry")
        self.totalLength = totalLength
        self.pieceLength = pieceLength
        self.blockLength = blockLength
        self.pieceCount = Int((totalLength + Int64(pieceLength) - 1) / Int64(pieceLength))
    }

    /// A piece index from outside input (a peer, a resume file), or nil if out of range.
    public func checkedPiece(_ raw: UInt32) -> PieceIndex? {
        Int(raw) < pieceCount ? PieceIndex(raw) : nil
    }

    /// The byte offset of a piece within the torrent's concatenated payload.
    public func offset(of piece: PieceIndex) -> Int64 {
        Int64(piece.value) * Int64(pieceLength)
    }

    /// The length of a piece: `pieceLength`, except for the last one.
    public func length(of piece: PieceIndex) -> Int {
        precondition(piece.int < pieceCount, "\(piece) is out of range")
        if piece.int == pieceCount - 1 {
            return Int(totalLength - Int64(pieceCount - 1) * Int64(pieceLength))
        }
        return pieceLength
    }

    /// How many blocks a piece has.
    public func blockCount(of piece: PieceIndex) -> Int {
        (length(of: piece) + Int(blockLength) - 1) / Int(blockLength)
    }

    /// The `index`-th block of a piece.
    public func block(_ index: Int, of piece: PieceIndex) -> BlockRange {
        let pieceBytes = length(of: piece)
        let offset = index * Int(blockLength)
        precondition(index >= 0 && offset < pieceBytes, "block \(index) is outside \(piece)")
        return BlockRange(
            piece: piece, offset: UInt32(offset), length: UInt32(min(Int(blockLength), pieceBytes - offset)))
    }

    /// Whether a block range from a peer lies inside the torrent and within request limits.
    public func isValid(_ block: BlockRange) -> Bool {
        guard block.piece.int < pieceCount, block.length > 0, block.length <= Self.maximumRequestLength else {
            return false
        }
        return Int(block.offset) + Int(block.length) <= length(of: block.piece)
    }

    /// Whether a block is one of this geometry's standard blocks (aligned and of the expected length),
    /// which is the only shape Potluck itself requests.
    public func isStandardBlock(_ block: BlockRange) -> Bool {
        guard isValid(block), block.offset % blockLength == 0 else { return false }
        return block == self.block(Int(block.offset / blockLength), of: block.piece)
    }
}
