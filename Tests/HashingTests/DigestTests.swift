import Testing
import TorrentModel

@testable import Hashing

/// Test vectors from FIPS 180-2, appendices A and B.
@Suite struct DigestVectorTests {
    static let twoBlockMessage = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

    @Test(arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (twoBlockMessage, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    ])
    func sha1(message: String, expected: String) {
        #expect(SHA1.hash(Array(message.utf8)).description == expected)
    }

    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (twoBlockMessage, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256(message: String, expected: String) {
        #expect(SHA256.hash(Array(message.utf8)).description == expected)
    }

    @Test func millionAsInUnevenUpdates() {
        // FIPS 180-2's long message, fed in chunks that do not line up with the 64-byte block.
        let sha1 = StreamingHasher(.sha1)
        let sha256 = StreamingHasher(.sha256)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for i in 0..<1000 {
            let part = chunk[..<(i % 2 == 0 ? 999 : 1000)]
            sha1.update(part)
            sha256.update(part)
        }
        sha1.update(chunk[..<500])
        sha256.update(chunk[..<500])
        #expect(sha1.finishSHA1().description == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        #expect(
            sha256.finishSHA256().description
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Finishing starts a new digest.
        #expect(sha1.finishSHA1() == SHA1.hash([UInt8]()))
    }

    @Test func digestsCompareByValue() {
        let a = SHA1.hash(Array("abc".utf8))
        let b = SHA1Digest(a.bytes)
        #expect(a == b)
        #expect(SHA1Digest([1, 2, 3]) == nil)
        #expect(Set([a, b!]).count == 1)
        #expect(SHA256Digest(bytes: SHA256.hash([UInt8]()).bytes) == SHA256.hash([UInt8]()))
    }

    /// The only ways from a digest to an infohash are named; they keep the bytes (BEP 3, BEP 52).
    @Test func infohashesFromDigestsKeepTheirBytes() {
        let info = Array("d4:name1:ae".utf8)
        #expect(InfoHash(v1Digest: SHA1.hash(info)).bytes == SHA1.hash(info).bytes)
        #expect(InfoHash(truncatingV2: SHA256.hash(info)).bytes == Array(SHA256.hash(info).bytes.prefix(20)))
    }
}
