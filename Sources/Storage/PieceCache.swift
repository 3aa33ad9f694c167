import Buffers
import TorrentModel

/// Whole pieces read for uploading, shared by every peer, in a fixed pool: a popular piece is read from
/// disk once and its blocks are sent to many peers straight from the cached copy. Pure bookkeeping: the
/// caller issues the reads (`PieceStore.readPiece`) and reports their outcome.
///
/// Invariants: at most `capacity` pieces are cached or loading (each holds one pool slot); a pinned piece
/// (blocks of it queued for sending) is never evicted, so its memory stays valid until unpinned; eviction
/// takes the least recently used ready, unpinned piece. Nothing is allocated after `init`.
///
/// Memory follows `limit`, not `capacity`: past `limit` pieces a load evicts rather than taking a new
/// slot (it goes past only when every piece is pinned or loading, rather than stall), and the pool hands
/// out the slot freed last, so only about `limit` slots' pages are ever touched.
public struct PieceCache {
    public enum Lookup: Equatable {
        /// In memory: its bytes are `pool.bytes(of: slot)`.
        case ready(BufferSlot)
        /// A read is under way.
        case loading
        case absent
    }

    private struct Entry {
        var slot: BufferSlot
        var ready: Bool
        var pins: Int
        var lastUse: UInt64
    }

    public let pool: BufferPool
    private var entries: [PieceIndex: Entry] = [:]
    private var useClock: UInt64 = 0

    /// A cache of `capacity` pieces of at most `pieceLength` bytes.
    public init(pieceLength: Int, capacity: Int) {
        precondition(pieceLength > 0 && capacity > 0, "an empty cache")
        pool = BufferPool(slotSizeBytes: pieceLength, slotCount: capacity)
        limit = capacity
        entries.reserveCapacity(capacity)
    }

    public var capacity: Int { pool.slotCount }
    public var count: Int { entries.count }
    /// How many pieces may be cached or loading before loads evict: in `1...capacity`.
    public private(set) var limit: Int

    /// Sets `limit`, clamped to `1...capacity`. Lowering it evicts nothing at once: loads evict from then on.
    public mutating func setLimit(_ pieces: Int) { limit = min(capacity, max(1, pieces)) }

    /// Where the piece is; a hit counts as a use.
    public mutating func lookup(_ piece: PieceIndex) -> Lookup {
        guard var entry = entries[piece] else { return .absent }
        guard entry.ready else { return .loading }
        useClock += 1
        entry.lastUse = useClock
        entries[piece] = entry
        return .ready(entry.slot)
    }

    /// A slot to read `piece` into: a free one while fewer than `limit` pieces are held, else the least
    /// recently used unpinned piece's (a free one if there is none); nil when every slot is loading or
    /// pinned. The piece is `loading` until `loadCompleted`/`loadFailed`.
    public mutating func beginLoad(_ piece: PieceIndex) -> BufferSlot? {
        precondition(entries[piece] == nil, "\(piece) is already cached or loading")
        var slot = entries.count < limit ? pool.lease() : nil
        if slot == nil {
            var victim: (piece: PieceIndex, lastUse: UInt64)?
            for (candidate, entry) in entries where entry.ready && entry.pins == 0 {
                if victim == nil || entry.lastUse < victim!.lastUse { victim = (candidate, entry.lastUse) }
            }
            slot = victim.map { entries.removeValue(forKey: $0.piece)!.slot } ?? pool.lease()
        }
        guard let slot else { return nil }
        entries[piece] = Entry(slot: slot, ready: false, pins: 0, lastUse: 0)
        return slot
    }

    public mutating func loadCompleted(_ piece: PieceIndex) {
        guard entries[piece]?.ready == false else { return }
        useClock += 1
        entries[piece]!.ready = true
        entries[piece]!.lastUse = useClock
    }

    /// The read failed: the slot is free again.
    public mutating func loadFailed(_ piece: PieceIndex) {
        guard let entry = entries[piece], !entry.ready else { return }
        entries[piece] = nil
        pool.release(entry.slot)
    }

    /// Keeps a ready piece in memory while a send uses it.
    public mutating func pin(_ piece: PieceIndex) {
        precondition(entries[piece]?.ready == true, "only a ready piece can be pinned")
        entries[piece]!.pins += 1
    }

    public mutating func unpin(_ piece: PieceIndex) {
        precondition((entries[piece]?.pins ?? 0) > 0, "\(piece) is not pinned")
        entries[piece]!.pins -= 1
    }

    public func pins(of piece: PieceIndex) -> Int { entries[piece]?.pins ?? 0 }

    /// No piece is loading or pinned: the cache's memory may be let go.
    public var isIdle: Bool { entries.values.allSatisfy { $0.ready && $0.pins == 0 } }
}
