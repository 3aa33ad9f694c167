import Testing

@testable import Bencode

@Suite struct EncodingTests {
    @Test func bep3Examples() {
        #expect(BencodeValue.string("spam").encoded() == Array("4:spam".utf8))
        #expect(BencodeValue.integer(3).encoded() == Array("i3e".utf8))
        #expect(BencodeValue.integer(-3).encoded() == Array("i-3e".utf8))
        #expect(BencodeValue.integer(0).encoded() == Array("i0e".utf8))
        #expect(BencodeValue.list(["spam", "eggs"]).encoded() == Array("l4:spam4:eggse".utf8))
        #expect(
            BencodeValue.dictionary(["spam": "eggs", "cow": "moo"]).encoded()
                == Array("d3:cow3:moo4:spam4:eggse".utf8))
        #expect(BencodeValue.dictionary(["spam": ["a", "b"]]).encoded() == Array("d4:spaml1:a1:bee".utf8))
    }

    @Test func keysAreSortedAsRawBytes() {
        let value: BencodeValue = ["a": 1, "Z": 2, "aa": 3, "": 4]
        #expect(value.encoded() == Array("d0:i4e1:Zi2e1:ai1e2:aai3ee".utf8))
    }

    @Test func extremeIntegers() {
        #expect(BencodeValue.integer(.min).encoded() == Array("i-9223372036854775808e".utf8))
        #expect(BencodeValue.integer(.max).encoded() == Array("i9223372036854775807e".utf8))
    }

    @Test func emptyContainersAndStrings() {
        #expect(BencodeValue.list([]).encoded() == Array("le".utf8))
        #expect(BencodeValue.dictionary([:]).encoded() == Array("de".utf8))
        #expect(BencodeValue.bytes([]).encoded() == Array("0:".utf8))
    }

    @Test func canonicalInputRoundTripsByteForByte() throws {
        let samples = [
            "d8:announce20:http://t.example/ann4:infod6:lengthi12345e4:name5:a.txt12:piece lengthi16384e6:pieces0:ee",
            "l0:leldeed1:ai0e1:bi-1ee1:\u{0}e",
            "i-9223372036854775808e",
        ]
        for sample in samples {
            let bytes = Array(sample.utf8)
            #expect(try BencodeValue(decoding: bytes).encoded() == bytes)
        }
    }
}

/// SplitMix64: a tiny seeded generator so that a failing property run can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func randomValue(depth: Int, using rng: inout SeededGenerator) -> BencodeValue {
    let kind = depth >= 5 ? Int.random(in: 0..<2, using: &rng) : Int.random(in: 0..<4, using: &rng)
    switch kind {
    case 0:
        let interesting: [Int64] = [0, 1, -1, 9, 10, -10, .max, .min]
        return Bool.random(using: &rng)
            ? .integer(interesting.randomElement(using: &rng) ?? 0)
            : .integer(Int64.random(in: .min ... .max, using: &rng))
    case 1:
        let length = Int.random(in: 0..<12, using: &rng)
        return .bytes((0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) })
    case 2:
        let count = Int.random(in: 0..<5, using: &rng)
        return .list((0..<count).map { _ in randomValue(depth: depth + 1, using: &rng) })
    default:
        var entries: [BencodeKey: BencodeValue] = [:]
        for _ in 0..<Int.random(in: 0..<5, using: &rng) {
            let keyLength = Int.random(in: 0..<4, using: &rng)
            let key = (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            entries[BencodeKey(key)] = randomValue(depth: depth + 1, using: &rng)
        }
        return .dictionary(entries)
    }
}

@Suite struct PropertyTests {
    @Test(arguments: [UInt64(1), 2, 3, 0xDEAD_BEEF])
    func randomValuesRoundTrip(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        for _ in 0..<300 {
            let value = randomValue(depth: 0, using: &rng)
            let bytes = value.encoded()
            let decoded = try BencodeValue(decoding: bytes)
            #expect(decoded == value, "seed \(seed)")
            #expect(decoded.encoded() == bytes)
            // The root's range covers the whole input.
            #expect(try BencodeDocument(bytes: bytes).root.range == 0..<bytes.count)
        }
    }

    @Test(arguments: [UInt64(7), 8])
    func everyStrictPrefixIsRejectedWithoutTrapping(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for _ in 0..<60 {
            let bytes = randomValue(depth: 0, using: &rng).encoded()
            for cut in 0..<bytes.count {
                let prefix = Array(bytes[..<cut])
                // A strict prefix of a bencoded value is never itself a complete value, except that
                // "i12e" cannot be cut into a valid integer either, so every prefix must be rejected.
                #expect(throws: BencodeError.self) { try BencodeDocument(bytes: prefix) }
            }
        }
    }

    @Test func randomByteFlipsNeverTrap() {
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<200 {
            var bytes = randomValue(depth: 0, using: &rng).encoded()
            guard !bytes.isEmpty else { continue }
            for _ in 0..<3 {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            // Either outcome is fine; what matters is that an accepted document re-encodes exactly.
            if let value = try? BencodeValue(decoding: bytes) {
                #expect(value.encoded() == bytes)
            }
        }
    }
}
