import Buffers
import Storage
import Testing
import TorrentModel

@Suite struct PieceCacheTests {
    @Test func aPieceIsLoadedOnceThenServedFromMemory() {
        var cache = PieceCache(pieceLength: 32_768, capacity: 2)
        #expect(cache.lookup(PieceIndex(3)) == .absent)
        let slot = cache.beginLoad(PieceIndex(3))
        #expect(slot != nil)
        #expect(cache.lookup(PieceIndex(3)) == .loading)
        cache.loadCompleted(PieceIndex(3))
        #expect(cache.lookup(PieceIndex(3)) == .ready(slot!))
        #expect(cache.pool.bytes(of: slot!).count == 32_768)
    }

    @Test func theLeastRecentlyUsedUnpinnedPieceIsEvicted() {
        var cache = PieceCache(pieceLength: 16_384, capacity: 3)
        for piece in 0..<3 {
            _ = cache.beginLoad(PieceIndex(piece))
            cache.loadCompleted(PieceIndex(piece))
        }
        _ = cache.lookup(PieceIndex(0))  // 1 is now the least recently used
        cache.pin(PieceIndex(1))  // but it is being sent
        let slot = cache.beginLoad(PieceIndex(7))
        #expect(slot != nil)
        #expect(cache.lookup(PieceIndex(2)) == .absent)
        #expect(cache.lookup(PieceIndex(1)) != .absent && cache.lookup(PieceIndex(0)) != .absent)
        #expect(cache.count == 3)
    }

    @Test func pinnedAndLoadingPiecesAreNeverEvicted() {
        var cache = PieceCache(pieceLength: 16_384, capacity: 2)
        _ = cache.beginLoad(PieceIndex(0))
        _ = cache.beginLoad(PieceIndex(1))
        cache.loadCompleted(PieceIndex(1))
        cache.pin(PieceIndex(1))
        #expect(cache.beginLoad(PieceIndex(2)) == nil)  // 0 loading, 1 pinned: the budget holds
        cache.unpin(PieceIndex(1))
        #expect(cache.pins(of: PieceIndex(1)) == 0)
        #expect(cache.beginLoad(PieceIndex(2)) != nil)
        #expect(cache.lookup(PieceIndex(1)) == .absent)
    }

    @Test func aFailedLoadFreesItsSlot() {
        var cache = PieceCache(pieceLength: 16_384, capacity: 1)
        _ = cache.beginLoad(PieceIndex(4))
        cache.loadFailed(PieceIndex(4))
        #expect(cache.lookup(PieceIndex(4)) == .absent)
        #expect(cache.beginLoad(PieceIndex(5)) != nil)
    }

    /// Under a limit, loads reuse the least recently used piece's slot, so the same few slots (and
    /// their pages) serve; past it only while everything held is pinned or loading.
    @Test func theLimitBoundsTheSlotsInUse() {
        var cache = PieceCache(pieceLength: 16_384, capacity: 8)
        cache.setLimit(2)
        var slots: Set<Int32> = []
        for piece in 0..<6 {
            let slot = cache.beginLoad(PieceIndex(piece))
            slots.insert(slot!.index)
            cache.loadCompleted(PieceIndex(piece))
        }
        #expect(cache.count == 2 && slots.count == 2)
        #expect(cache.lookup(PieceIndex(5)) != .absent && cache.lookup(PieceIndex(4)) != .absent)

        cache.pin(PieceIndex(4))
        cache.pin(PieceIndex(5))
        #expect(cache.beginLoad(PieceIndex(6)) != nil, "everything held is pinned: past the limit")
        #expect(cache.count == 3)
        cache.setLimit(100)
        #expect(cache.limit == 8)
        cache.setLimit(0)
        #expect(cache.limit == 1)
    }
}
