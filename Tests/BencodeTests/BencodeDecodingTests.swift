import Testing

@testable import Bencode

private func decode(
    _ text: String, limits: BencodeLimits = BencodeLimits()
) throws(BencodeError) -> BencodeNode {
    try BencodeDocument(bytes: Array(text.utf8), limits: limits).root
}

private func rejection(_ text: String, limits: BencodeLimits = BencodeLimits()) -> BencodeError? {
    do {
        _ = try decode(text, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// The examples BEP 3 gives in its "bencoding" section.
@Suite struct BEP3VectorTests {
    @Test func byteString() throws {
        let root = try decode("4:spam")
        #expect(root.kind == .byteString)
        #expect(root.string == "spam")
        #expect(root.range == 0..<6)
    }

    @Test func integers() throws {
        #expect(try decode("i3e").integer == 3)
        #expect(try decode("i-3e").integer == -3)
        #expect(try decode("i0e").integer == 0)
    }

    @Test func list() throws {
        let root = try decode("l4:spam4:eggse")
        let elements = try #require(root.list).map { $0.string }
        #expect(elements == ["spam", "eggs"])
        #expect(root.count == 2)
    }

    @Test func dictionary() throws {
        let root = try decode("d3:cow3:moo4:spam4:eggse")
        #expect(root["cow"]?.string == "moo")
        #expect(root["spam"]?.string == "eggs")
        #expect(root["pig"] == nil)
        #expect(root.count == 2)
    }

    @Test func dictionaryWithListValue() throws {
        let root = try decode("d4:spaml1:a1:bee")
        let spam = try #require(root["spam"]?.list).map { $0.string }
        #expect(spam == ["a", "b"])
    }

    @Test func negativeZeroIsInvalid() {
        #expect(rejection("i-0e") == .negativeZero(offset: 0))
    }

    @Test func leadingZerosAreInvalid() {
        #expect(rejection("i03e") == .leadingZero(offset: 1))
        #expect(rejection("i-03e") == .leadingZero(offset: 2))
        #expect(rejection("03:abc") == .leadingZero(offset: 0))
        #expect(rejection("i00e") == .leadingZero(offset: 1))
    }

    @Test func keysMustBeSortedAsRawBytes() {
        #expect(rejection("d4:spam4:eggs3:cow3:mooe") == .unsortedKey(offset: 13))
        // Raw byte order puts "Z" (0x5a) before "a" (0x61).
        #expect(rejection("d1:Z0:1:a0:e") == nil)
        #expect(rejection("d1:a0:1:Z0:e") == .unsortedKey(offset: 6))
        // A prefix sorts before any longer key that extends it.
        #expect(rejection("d1:a0:2:aa0:e") == nil)
        #expect(rejection("d2:aa0:1:a0:e") == .unsortedKey(offset: 7))
    }

    @Test func keysMustBeUnique() {
        #expect(rejection("d3:cow3:moo3:cow3:mooe") == .duplicateKey(offset: 11))
    }

    /// For datagrams from clients that do not sort: any order, still no repeats, nested too.
    @Test func unsortedKeysWhenAllowed() throws {
        var lenient = BencodeLimits()
        lenient.allowsUnsortedKeys = true
        let document = try BencodeDocument(
            bytes: Array("d4:spam4:eggs3:cow3:moo1:dd1:b0:1:a0:ee".utf8), limits: lenient)
        #expect(document.root["cow"]?.string == "moo")
        #expect(document.root["spam"]?.string == "eggs")
        #expect(document.root["d"]?.count == 2)
        #expect(throws: BencodeError.duplicateKey(offset: 23)) {
            try BencodeDocument(bytes: Array("d4:spam4:eggs3:cow3:moo4:spam0:e".utf8), limits: lenient)
        }
        #expect(throws: BencodeError.duplicateKey(offset: 15)) {
            try BencodeDocument(bytes: Array("d1:ad1:b0:1:a0:1:b0:ee".utf8), limits: lenient)
        }
        // The default stays strict.
        #expect(rejection("d4:spam4:eggs3:cow3:mooe") == .unsortedKey(offset: 13))
    }
}

@Suite struct RejectionTests {
    @Test func emptyInput() {
        #expect(rejection("") == .unexpectedEnd(offset: 0, expected: .value))
    }

    @Test func unknownLeadByte() {
        #expect(rejection("x") == .unexpectedByte(offset: 0, found: UInt8(ascii: "x"), expected: .value))
        #expect(rejection("l-e") == .unexpectedByte(offset: 1, found: UInt8(ascii: "-"), expected: .value))
    }

    @Test func malformedIntegers() {
        #expect(rejection("ie") == .unexpectedByte(offset: 1, found: UInt8(ascii: "e"), expected: .digit))
        #expect(rejection("i-e") == .unexpectedByte(offset: 2, found: UInt8(ascii: "e"), expected: .digit))
        #expect(
            rejection("i1x") == .unexpectedByte(offset: 2, found: UInt8(ascii: "x"), expected: .digitOrEnd))
        #expect(rejection("i+1e") == .unexpectedByte(offset: 1, found: UInt8(ascii: "+"), expected: .digit))
        #expect(rejection("i12") == .unexpectedEnd(offset: 3, expected: .digitOrEnd))
        #expect(rejection("i") == .unexpectedEnd(offset: 1, expected: .digit))
    }

    @Test func sixtyFourBitBounds() throws {
        #expect(try decode("i9223372036854775807e").integer == Int64.max)
        #expect(try decode("i-9223372036854775808e").integer == Int64.min)
        #expect(rejection("i9223372036854775808e") == .integerOverflow(offset: 0))
        #expect(rejection("i-9223372036854775809e") == .integerOverflow(offset: 0))
        #expect(rejection("i99999999999999999999999e") == .integerOverflow(offset: 0))
    }

    @Test func stringLengthIsCheckedAgainstInput() {
        #expect(
            rejection("5:spam") == .stringLengthExceedsInput(offset: 0, declaredLength: 5, availableBytes: 4))
        #expect(
            rejection("4spam")
                == .unexpectedByte(offset: 1, found: UInt8(ascii: "s"), expected: .digitOrColon))
        #expect(rejection("4") == .unexpectedEnd(offset: 1, expected: .digitOrColon))
        let huge = "99999999999999999999999999:x"
        #expect(
            rejection(huge)
                == .stringLengthExceedsInput(offset: 0, declaredLength: Int.max, availableBytes: 0))
    }

    @Test func keysMustBeByteStrings() {
        #expect(
            rejection("di1e0:e") == .unexpectedByte(offset: 1, found: UInt8(ascii: "i"), expected: .keyOrEnd))
        #expect(
            rejection("dle0:e") == .unexpectedByte(offset: 1, found: UInt8(ascii: "l"), expected: .keyOrEnd))
    }

    @Test func keyWithoutValue() {
        #expect(
            rejection("d3:cowe") == .unexpectedByte(offset: 6, found: UInt8(ascii: "e"), expected: .value))
        #expect(rejection("d3:cow") == .unexpectedEnd(offset: 6, expected: .value))
    }

    @Test func unterminatedContainers() {
        #expect(rejection("l") == .unexpectedEnd(offset: 1, expected: .value))
        #expect(rejection("d") == .unexpectedEnd(offset: 1, expected: .keyOrEnd))
        #expect(rejection("l4:spam") == .unexpectedEnd(offset: 7, expected: .value))
    }

    @Test func trailingBytes() {
        #expect(rejection("i1ei2e") == .trailingBytes(offset: 3))
        #expect(rejection("4:spamx") == .trailingBytes(offset: 6))
        #expect(rejection("lee") == .trailingBytes(offset: 2))
    }

    @Test func depthLimit() throws {
        let limits = BencodeLimits(maxDepth: 100)
        let deepest = String(repeating: "l", count: 100) + String(repeating: "e", count: 100)
        #expect(rejection(deepest, limits: limits) == nil)
        let tooDeep = String(repeating: "l", count: 101) + String(repeating: "e", count: 101)
        #expect(rejection(tooDeep, limits: limits) == .depthLimitExceeded(offset: 100))
    }

    @Test func deepNestingDoesNotRecurse() {
        // A million open lists would overflow any recursive decoder's stack; the limit stops this one
        // early, and even with the limit lifted it walks the input with an explicit stack.
        let count = 1_000_000
        let bytes =
            [UInt8](repeating: UInt8(ascii: "l"), count: count)
            + [UInt8](repeating: UInt8(ascii: "e"), count: count)
        let limits = BencodeLimits(maxDepth: .max, maxElementCount: .max, maxInputBytes: .max)
        #expect(throws: Never.self) { try BencodeDocument(bytes: bytes, limits: limits) }
        #expect(throws: BencodeError.depthLimitExceeded(offset: 100)) { try BencodeDocument(bytes: bytes) }
    }

    @Test func elementLimit() {
        let limits = BencodeLimits(maxElementCount: 3)
        #expect(rejection("li1ei2ee", limits: limits) == nil)
        #expect(rejection("li1ei2ei3ee", limits: limits) == .elementLimitExceeded(offset: 7))
        // Dictionary keys count as elements too.
        #expect(rejection("d1:ai1ee", limits: limits) == nil)
        #expect(rejection("d1:ai1e1:bi2ee", limits: limits) == .elementLimitExceeded(offset: 7))
    }

    @Test func inputSizeLimit() {
        let limits = BencodeLimits(maxInputBytes: 5)
        #expect(rejection("3:abc", limits: limits) == nil)
        #expect(rejection("4:spam", limits: limits) == .inputTooLarge(byteCount: 6, limit: 5))
    }
}

@Suite struct NodeAccessTests {
    @Test func rangesPointAtExactEncodedBytes() throws {
        let text = "d4:infod6:lengthi5e4:name1:xe3:zzzi1ee"
        let document = try BencodeDocument(bytes: Array(text.utf8))
        let info = try #require(document.root["info"])
        #expect(String(decoding: info.encodedBytes, as: UTF8.self) == "d6:lengthi5e4:name1:xe")
        #expect(info.range == 7..<29)
        #expect(document.root["zzz"]?.integer == 1)
        let keys = try #require(document.root.dictionary).map { String(decoding: $0.key, as: UTF8.self) }
        #expect(keys == ["info", "zzz"])
    }

    @Test func nestedContainersAreSkippedWhenIterating() throws {
        let root = try decode("l l i1e l i2e e e d 1:a l e e 0: e".filter { $0 != " " })
        let kinds = try #require(root.list).map(\.kind)
        #expect(kinds == [.list, .dictionary, .byteString])
        #expect(root.count == 3)
    }

    @Test func binaryKeysAndValues() throws {
        let bytes: [UInt8] =
            Array("d2:".utf8) + [0x00, 0xff] + Array("2:".utf8) + [0xc3, 0x28] + [UInt8(ascii: "e")]
        let root = try BencodeDocument(bytes: bytes).root
        let entry = try #require(root.dictionary?.first(where: { _ in true }))
        #expect(Array(entry.key) == [0x00, 0xff])
        #expect(entry.value.byteString.map(Array.init) == [0xc3, 0x28])
        // Not valid UTF-8, so no String view.
        #expect(entry.value.string == nil)
        #expect(root[[0x00, 0xff][...]] != nil)
    }

    @Test func accessorsOfTheWrongKindAreNil() throws {
        let root = try decode("i7e")
        #expect(root.string == nil)
        #expect(root.list == nil)
        #expect(root.dictionary == nil)
        #expect(root["x"] == nil)
        #expect(root.count == 0)
    }
}
