import TorrentModel

/// Picking for a source that serves long byte ranges best: a web seed (BEP 19), for which each run of
/// adjacent blocks becomes one HTTP range. BEP 19 asks such a source to start at the beginning of the
/// largest gap (the longest run of pieces nobody has or is fetching) and to go on until it reaches a
/// piece that is not missing, so the server sees few, long, sequential requests while peers fill the
/// rest rarest first.
///
/// Cost: continuing a run costs O(blocks taken); finding a new gap is one pass over the pieces, made
/// only when a run ends.
extension PiecePicker {
    /// Appends up to `maximumCount` blocks for `peer` (which has `peerHas`) to `blocks`, in payload
    /// order, and marks them requested by it; returns how many. It goes on from `after` (the last block
    /// `peer` was given) while the pieces there are missing, else starts at the beginning of the largest
    /// gap among the missing pieces of the highest priority wanted (the first such gap on a tie), and at
    /// the next largest when that one ends. When no gap is left (every missing piece is being fetched),
    /// or the cap on pieces in progress stops it, it picks as ``pickBlocks(for:peerHas:maximumCount:into:)``
    /// does: open blocks of started pieces, then endgame duplicates. Sequential mode picks as that does.
    @discardableResult
    public mutating func pickRun(
        for peer: PeerSlot, peerHas: PieceSet, maximumCount: Int, after: BlockRange?,
        into blocks: inout [BlockRange]
    ) -> Int {
        precondition(peerHas.pieceCount == pieceCount, "peer's piece set does not match the geometry")
        guard maximumCount > 0, !peerHas.isEmpty else { return 0 }
        guard !isSequential else {
            return pickBlocks(for: peer, peerHas: peerHas, maximumCount: maximumCount, into: &blocks)
        }
        var remaining = maximumCount
        var cursor = after.flatMap { continueRun(after: $0, peer, &remaining, &blocks) }
        while remaining > 0, let priority = highestBucketedPriority {
            if cursor.map({ !isGapPiece($0, priority, peerHas) }) ?? true {
                cursor = Self.largestGap(count: pieceCount) { isGapPiece($0, priority, peerHas) }?.lowerBound
            }
            guard let piece = cursor, mayStartPiece() else { break }
            remaining -= takeOpenBlocks(startDownloading(piece), peer, remaining, &blocks)
            cursor = piece + 1
        }
        if remaining > 0 {
            remaining -= pickBlocks(for: peer, peerHas: peerHas, maximumCount: remaining, into: &blocks)
        }
        return maximumCount - remaining
    }

    /// The longest run of consecutive indices in `0..<count` for which `isInGap` holds, the first of
    /// the longest on a tie; nil when there is none. BEP 19's example: in `YYnnnnYnnY` (Y: have) the
    /// gaps are 2..<6 and 7..<9, and the first is the largest.
    static func largestGap(count: Int, isInGap: (Int) -> Bool) -> Range<Int>? {
        var best: Range<Int>?
        var start: Int?
        for index in 0...count {
            if index < count && isInGap(index) {
                if start == nil { start = index }
            } else if let first = start {
                if index - first > best?.count ?? 0 { best = first..<index }
                start = nil
            }
        }
        return best
    }

    /// Takes the open blocks right after `after` in its piece, if that is where the piece's open blocks
    /// start; returns the piece after it when `after`'s piece has nothing more to give in order.
    private mutating func continueRun(
        after: BlockRange, _ peer: PeerSlot, _ remaining: inout Int, _ blocks: inout [BlockRange]
    ) -> Int? {
        let piece = after.piece.int
        guard piece < pieceCount else { return nil }
        switch states[piece] {
        case .missing: return nil  // released: its blocks are open again, for anyone
        case .awaitingHash, .verified: return piece + 1
        case .downloading: break
        }
        guard let (record, b) = locate(after) else { return nil }
        let next = b + 1
        guard next < records[record].blockCount else { return piece + 1 }
        guard records[record].firstOpenHint == next, table.states[records[record].base + next] == .open
        else { return nil }
        remaining -= takeOpenBlocks(record, peer, remaining, &blocks)
        return records[record].firstOpenHint >= records[record].blockCount ? piece + 1 : nil
    }

    /// The highest priority among the missing wanted pieces, from the first non-empty bucket.
    private var highestBucketedPriority: UInt8? {
        nextNonEmptyBucket(atOrAfter: 0).map { UInt8(Self.priorityLevels - $0 / Self.availabilityLevels) }
    }

    /// Whether `index` belongs to a gap: missing (nobody is fetching it), of priority `priority`, and
    /// `peerHas` it.
    private func isGapPiece(_ index: Int, _ priority: UInt8, _ peerHas: PieceSet) -> Bool {
        index < pieceCount && states[index] == .missing && priorities[index] == priority
            && peerHas.contains(PieceIndex(index))
    }
}
