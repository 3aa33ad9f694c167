import Testing

@testable import Hashing

/// The sixteen-lane SHA-1 against FIPS 180-2's vectors and against OpenSSL. On a CPU without AVX-512
/// `SHA1Lanes` hashes through OpenSSL and these tests check only that path.
@Suite struct SHA1LanesTests {
    private func digests(of messages: [[UInt8]]) -> [String] {
        let lanes = SHA1Lanes()
        var pointers: [UnsafeRawBufferPointer] = []
        for message in messages {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: message.count, alignment: 1)
            copy.copyBytes(from: message)
            pointers.append(UnsafeRawBufferPointer(copy))
        }
        defer { for pointer in pointers { pointer.deallocate() } }
        return lanes.digests(of: pointers).map(\.description)
    }

    @Test func fipsVectorsInLanesOfDifferentLengths() {
        let messages: [[UInt8]] = [
            [], Array("abc".utf8), Array(DigestVectorTests.twoBlockMessage.utf8),
            [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000),
        ]
        #expect(
            digests(of: messages) == [
                "da39a3ee5e6b4b0d3255bfef95601890afd80709", "a9993e364706816aba3e25717850c26c9cd0d89d",
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1", "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
            ])
    }

    /// Lengths around the padding's edges (55 bytes and fewer fit one tail block, 56 to 63 need two)
    /// and random ones, more messages than lanes, so lanes are refilled as their messages end.
    @Test(arguments: [1, 2, 3])
    func randomMessagesMatchOpenSSL(seed: UInt64) {
        var generator = SplitMix(seed: seed)
        let edges = [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 16384]
        let lengths = edges + (0..<60).map { _ in Int(generator.next() % 5000) }
        let messages = lengths.map { length in
            (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        }
        #expect(digests(of: messages) == messages.map { SHA1.hash($0).description })
    }

    /// Pieces of one size fill the lanes exactly, and a seventeenth waits for the first free lane.
    @Test(arguments: [16, 17])
    func piecesOfOneSize(count: Int) {
        var generator = SplitMix(seed: UInt64(count))
        let messages = (0..<count).map { _ in
            (0..<(256 * 1024)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        }
        #expect(digests(of: messages) == messages.map { SHA1.hash($0).description })
    }

    @Test func noMessagesNoDigests() {
        #expect(digests(of: []).isEmpty)
    }
}
