import Testing
import TorrentModel

@Suite struct PieceSetTests {
    @Test func wireLayoutIsHighBitFirst() {
        var bits = PieceSet(pieceCount: 10)
        #expect(bits.wireBytes == [0, 0])
        bits.insert(PieceIndex(0))
        bits.insert(PieceIndex(9))
        #expect(bits.wireBytes == [0x80, 0x40])
        #expect(bits.count == 2)
        let insertedAgain = bits.insert(PieceIndex(9))
        #expect(!insertedAgain)
        #expect(bits.count == 2)
        bits.insertAll()
        #expect(bits.wireBytes == [0xff, 0xc0] && bits.isComplete)
        bits.removeAll()
        #expect(bits.isEmpty && bits.wireBytes == [0, 0])
    }

    @Test func outsideBytesAreValidated() {
        #expect(PieceSet(wireBytes: [0xff, 0xc0], pieceCount: 10)?.count == 10)
        #expect(PieceSet(wireBytes: [0xff, 0xe0], pieceCount: 10) == nil, "a spare bit is set")
        #expect(PieceSet(wireBytes: [0xff], pieceCount: 10) == nil, "too short")
        #expect(PieceSet(wireBytes: [0xff, 0, 0], pieceCount: 10) == nil, "too long")
        #expect(PieceSet(wireBytes: [0xff, 0xff], pieceCount: 16)?.isComplete == true)
        #expect(PieceSet(wireBytes: [], pieceCount: 0)?.isEmpty == true)
        #expect(PieceSet(wireBytes: [0b1010_0000], pieceCount: 3)?.contains(PieceIndex(2)) == true)
    }

    @Test func aPieceOutOfRangeIsNotContained() {
        let all = PieceSet(pieceCount: 5, full: true)
        #expect(!all.contains(PieceIndex(5)))
        #expect(!all.contains(PieceIndex(UInt32.max)))
    }

    /// Random sets at sizes around the 64-bit word boundaries, against a plain `Set` of indices.
    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 1000])
    func matchesAPlainSet(pieceCount: Int) {
        var random = SeededRandom(seed: UInt64(pieceCount) &+ 17)
        for _ in 0..<20 {
            var set = PieceSet(pieceCount: pieceCount)
            var other = PieceSet(pieceCount: pieceCount)
            var reference: Set<Int> = []
            var otherReference: Set<Int> = []
            for _ in 0..<(pieceCount * 2) {
                let piece = Int(random.next(upperBound: UInt64(pieceCount)))
                switch random.next(upperBound: UInt64(3)) {
                case 0:
                    let inserted = set.insert(PieceIndex(piece))
                    #expect(inserted == reference.insert(piece).inserted)
                case 1:
                    let removed = set.remove(PieceIndex(piece))
                    #expect(removed == (reference.remove(piece) != nil))
                default:
                    other.insert(PieceIndex(piece))
                    otherReference.insert(piece)
                }
            }
            #expect(set.count == reference.count)
            #expect(set.pieces.map(\.int) == reference.sorted())
            #expect(set.intersects(other) == !reference.isDisjoint(with: otherReference))
            #expect(
                PieceSet(wireBytes: set.wireBytes, pieceCount: pieceCount) == set, "the wire form round-trips"
            )
            var full = set
            full.insertAll()
            #expect(full.count == pieceCount && full.pieces.count == pieceCount)
            #expect(
                PieceSet(wireBytes: full.wireBytes, pieceCount: pieceCount)
                    == PieceSet(pieceCount: pieceCount, full: true))
        }
    }
}
