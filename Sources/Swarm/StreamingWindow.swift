import TorrentModel

/// A piece whose priority in the picker must change.
public struct PriorityChange: Hashable, Sendable {
    public var piece: PieceIndex
    public var priority: PiecePriority

    public init(piece: PieceIndex, priority: PiecePriority) {
        self.piece = piece
        self.priority = priority
    }
}

/// The streaming deadline window: the `lengthPieces` pieces from the first missing wanted one on are
/// raised to `PiecePriority.highest`, so what a player reads next comes first while the rest of the
/// torrent still goes rarest first. As pieces are verified, the window moves forward. It only says
/// which priorities to change; the owner sets them in the picker.
///
/// Invariants: every piece before `start` is verified or skipped (base priority 0); the window is
/// `start..<end` with `end == min(start + lengthPieces, pieceCount)` once placed; a piece's priority in
/// the picker is `.highest` when it is in the window and wanted, its base priority otherwise.
public struct StreamingWindow: Sendable {
    /// How many pieces the window spans (skipped pieces inside it stay skipped).
    public let lengthPieces: Int
    /// The priorities the pieces have outside the window (from the files' priorities).
    public private(set) var base: [PiecePriority]
    /// The first missing wanted piece (or `pieceCount` when there is none).
    public private(set) var start = 0
    private var end = 0

    /// A window of `lengthPieces` over pieces of priorities `base`, not placed yet: `advance` places it.
    public init(lengthPieces: Int, base: [PiecePriority]) {
        precondition(lengthPieces >= 0, "a negative window")
        self.lengthPieces = lengthPieces
        self.base = base
    }

    /// The pieces the window spans now.
    public var pieces: Range<Int> { start..<end }

    /// The priority `piece` should have in the picker now.
    public func priority(of piece: PieceIndex) -> PiecePriority {
        pieces.contains(piece.int) && base[piece.int] > .skip ? .highest : base[piece.int]
    }

    /// Moves the window past the verified and skipped pieces at its start, given the pieces verified so
    /// far (`have` only grows); appends the pieces whose priority changes. Costs the pieces it passes.
    public mutating func advance(have: PieceSet, into changes: inout [PriorityChange]) {
        precondition(have.pieceCount == base.count, "have set does not match the window's pieces")
        var newStart = start
        while newStart < base.count && (base[newStart] == .skip || have.contains(PieceIndex(newStart))) {
            newStart += 1
        }
        let newEnd = min(base.count, newStart + lengthPieces)
        // Left behind: back to their base priority; newly covered: raised.
        for index in start..<min(end, newStart) where base[index] > .skip {
            changes.append(PriorityChange(piece: PieceIndex(index), priority: base[index]))
        }
        for index in max(end, newStart)..<newEnd where base[index] > .skip {
            changes.append(PriorityChange(piece: PieceIndex(index), priority: .highest))
        }
        (start, end) = (newStart, newEnd)
    }

    /// New base priorities (the file selection changed): the window starts again from the first missing
    /// wanted piece. Appends every piece whose priority in the picker changes. O(pieces).
    public mutating func setBase(
        _ newBase: [PiecePriority], have: PieceSet, into changes: inout [PriorityChange]
    ) {
        precondition(newBase.count == base.count, "new priorities for another torrent")
        let before = self
        base = newBase
        (start, end) = (0, 0)
        var ignored: [PriorityChange] = []
        advance(have: have, into: &ignored)
        for index in base.indices {
            let piece = PieceIndex(index)
            let now = priority(of: piece)
            if now != before.priority(of: piece) {
                changes.append(PriorityChange(piece: piece, priority: now))
            }
        }
    }
}
