import PeerWire
import Testing
import TorrentModel

/// A plain SHA-1 (FIPS 180-4), written here so that the tests of this module need nothing else.
func sha1(_ message: [UInt8]) -> [UInt8] {
    func rotateLeft(_ value: UInt32, _ count: UInt32) -> UInt32 { value << count | value >> (32 - count) }
    var state: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
    var padded = message
    padded.append(0x80)
    while padded.count % 64 != 56 { padded.append(0) }
    let bitCount = UInt64(message.count) * 8
    for shift in stride(from: 56, through: 0, by: -8) {
        padded.append(UInt8(truncatingIfNeeded: bitCount >> UInt64(shift)))
    }
    var words = [UInt32](repeating: 0, count: 80)
    for block in stride(from: 0, to: padded.count, by: 64) {
        for i in 0..<16 {
            let at = block + 4 * i
            words[i] =
                UInt32(padded[at]) << 24 | UInt32(padded[at + 1]) << 16 | UInt32(padded[at + 2]) << 8
                | UInt32(padded[at + 3])
        }
        for i in 16..<80 {
            words[i] = rotateLeft(words[i - 3] ^ words[i - 8] ^ words[i - 14] ^ words[i - 16], 1)
        }
        var (a, b, c, d, e) = (state[0], state[1], state[2], state[3], state[4])
        for i in 0..<80 {
            let f: UInt32
            let k: UInt32
            switch i {
            case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
            case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
            case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
            default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
            }
            let next = rotateLeft(a, 5) &+ f &+ e &+ k &+ words[i]
            (e, d, c, b, a) = (d, c, rotateLeft(b, 30), a, next)
        }
        state[0] &+= a
        state[1] &+= b
        state[2] &+= c
        state[3] &+= d
        state[4] &+= e
    }
    return state.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> UInt32(24 - 8 * $0)) } }
}

@Suite struct AllowedFastSetTests {
    @Test func theTestSHA1IsRight() {
        // FIPS 180 examples.
        #expect(Hex.encode(sha1(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Hex.encode(sha1([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        let twoBlocks = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(Hex.encode(sha1(twoBlocks)) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
    }

    /// BEP 6's example results: 1313 pieces, infohash 0xaa * 20, peer 80.4.4.200.
    @Test func bep6ExampleSets() {
        let ip: UInt32 = 80 << 24 | 4 << 16 | 4 << 8 | 200
        let seven = AllowedFastSet.pieces(
            count: 7, pieceCount: 1313, infoHash: id20(0xaa), peerIPv4: ip, sha1: sha1)
        #expect(seven.map(\.value) == [1059, 431, 808, 1217, 287, 376, 1188])
        let nine = AllowedFastSet.pieces(
            count: 9, pieceCount: 1313, infoHash: id20(0xaa), peerIPv4: ip, sha1: sha1)
        #expect(nine.map(\.value) == [1059, 431, 808, 1217, 287, 376, 1188, 353, 508])
        // The last octet does not matter.
        let neighbour = AllowedFastSet.pieces(
            count: 9, pieceCount: 1313, infoHash: id20(0xaa), peerIPv4: ip - 100, sha1: sha1)
        #expect(neighbour == nine)
    }

    @Test func smallTorrentsGetEveryPieceAtMostOnce() {
        let all = AllowedFastSet.pieces(count: 10, pieceCount: 3, infoHash: id20(1), peerIPv4: 1, sha1: sha1)
        #expect(Set(all.map(\.value)) == [0, 1, 2] && all.count == 3)
        #expect(
            AllowedFastSet.pieces(count: 10, pieceCount: 0, infoHash: id20(1), peerIPv4: 1, sha1: sha1)
                .isEmpty)
    }
}
