/// The four kinds of bencoded value.
public enum BencodeKind: UInt8, Hashable, Sendable {
    case integer
    case byteString
    case list
    case dictionary
}

/// One decoded value, recorded as ranges into the input rather than copied out of it.
struct BencodeToken: Sendable {
    var kind: BencodeKind
    /// Where the value's encoding starts (its `i`, `l`, `d` or first length digit).
    var start: Int
    /// One past the value's last byte (its `e`, or the last byte of a string's payload).
    var end: Int
    /// For a byte string, where its payload starts (after the `:`); otherwise `start`.
    var payloadStart: Int
    /// For an integer, its value; otherwise 0.
    var integer: Int64
    /// The index of the first token after this value and all of its descendants.
    var subtreeEnd: Int
    /// For a list, its element count; for a dictionary, its key count; otherwise 0.
    var childCount: Int
}

/// A validated bencoded document: the input bytes and a flat parse tree that points into them.
///
/// Decoding is strict where BEP 3 is (no leading zeros, no `-0`, sorted unique dictionary keys, no
/// trailing bytes), so every accepted document is canonical: re-encoding any of its values reproduces
/// the input bytes exactly. That is what makes ``BencodeNode/range`` usable for infohashes.
///
/// Invariants: `tokens` lists the values in the order they appear in `bytes` (a pre-order walk of the
/// tree); every token's ranges lie inside `bytes`; a container's descendants are the tokens in
/// `index + 1 ..< subtreeEnd`; `tokens` is never empty.
public struct BencodeDocument: Sendable {
    /// The input, kept whole so that nodes can hand out slices of it without copying.
    public let bytes: [UInt8]
    let tokens: [BencodeToken]

    /// Decodes and validates `bytes`.
    ///
    /// Never traps: any malformed input, however hostile, is reported as a ``BencodeError``. Nesting is
    /// handled with an explicit stack, so stack use does not grow with the input.
    public init(bytes: [UInt8], limits: BencodeLimits = BencodeLimits()) throws(BencodeError) {
        self.bytes = bytes
        var parser = Parser(bytes: bytes, limits: limits)
        self.tokens = try parser.parse()
    }

    /// The root value.
    public var root: BencodeNode { BencodeNode(document: self, index: 0) }
}

/// A value inside a ``BencodeDocument``. Cheap to copy: it refers to the document's storage.
public struct BencodeNode: Sendable {
    /// The document this node belongs to.
    public let document: BencodeDocument
    let index: Int

    var token: BencodeToken { document.tokens[index] }

    /// What kind of value this is.
    public var kind: BencodeKind { token.kind }

    /// The exact bytes of this value's encoding within ``BencodeDocument/bytes``. The v1 infohash is
    /// SHA-1 over this range of the `info` dictionary.
    public var range: Range<Int> { token.start..<token.end }

    /// This value's encoding, as a slice of the input (no copy).
    public var encodedBytes: ArraySlice<UInt8> { document.bytes[range] }

    /// The value of an integer, or nil for other kinds.
    public var integer: Int64? { kind == .integer ? token.integer : nil }

    /// The payload of a byte string (without its length prefix), or nil for other kinds.
    public var byteString: ArraySlice<UInt8>? {
        let token = token
        return token.kind == .byteString ? document.bytes[token.payloadStart..<token.end] : nil
    }

    /// The payload of a byte string decoded as UTF-8, or nil if this is not a byte string or not valid
    /// UTF-8.
    public var string: String? {
        guard let payload = byteString else { return nil }
        return String(validating: payload, as: UTF8.self)
    }

    /// The number of elements of a list or keys of a dictionary; 0 for other kinds.
    public var count: Int { token.childCount }

    /// The elements of a list, or nil for other kinds.
    public var list: BencodeList? { kind == .list ? BencodeList(node: self) : nil }

    /// The entries of a dictionary in their (sorted) order, or nil for other kinds.
    public var dictionary: BencodeDictionary? { kind == .dictionary ? BencodeDictionary(node: self) : nil }

    /// The value for `key` if this is a dictionary that has it.
    public subscript(key: String) -> BencodeNode? {
        var key = key
        return key.withUTF8 { valueIndex(forKey: $0) }.map { BencodeNode(document: document, index: $0) }
    }

    /// The value for a raw byte-string key if this is a dictionary that has it.
    public subscript(key: ArraySlice<UInt8>) -> BencodeNode? {
        key.withUnsafeBufferPointer { valueIndex(forKey: $0) }.map {
            BencodeNode(document: document, index: $0)
        }
    }

    /// The token of the value stored under `key`, found by walking the keys' tokens and comparing their
    /// bytes in place, the length first. A node per entry (each retaining the document) and a generic
    /// comparison per key made lookups most of the time a DHT node spends decoding a message.
    private func valueIndex(forKey key: UnsafeBufferPointer<UInt8>) -> Int? {
        let tokens = document.tokens
        guard tokens[index].kind == .dictionary else { return nil }
        let end = tokens[index].subtreeEnd
        return document.bytes.withUnsafeBufferPointer { bytes in
            var keyIndex = index + 1
            while keyIndex < end {
                let keyToken = tokens[keyIndex]
                let valueIndex = keyToken.subtreeEnd
                guard valueIndex < end else { return nil }
                let keyBytes = UnsafeBufferPointer(rebasing: bytes[keyToken.payloadStart..<keyToken.end])
                if keyBytes.count == key.count && keyBytes.elementsEqual(key) { return valueIndex }
                keyIndex = tokens[valueIndex].subtreeEnd
            }
            return nil
        }
    }

    /// The first child token of a container, and the token after its subtree.
    var childTokens: (first: Int, end: Int) { (index + 1, token.subtreeEnd) }
}

/// The elements of a bencoded list, in order.
public struct BencodeList: Sequence, Sendable {
    let node: BencodeNode

    /// The number of elements.
    public var count: Int { node.count }

    /// Walks the elements by jumping over each one's subtree, so iteration is linear in the element count.
    public struct Iterator: IteratorProtocol {
        let document: BencodeDocument
        var nextToken: Int
        let end: Int

        public mutating func next() -> BencodeNode? {
            guard nextToken < end else { return nil }
            let node = BencodeNode(document: document, index: nextToken)
            nextToken = document.tokens[nextToken].subtreeEnd
            return node
        }
    }

    public func makeIterator() -> Iterator {
        let (first, end) = node.childTokens
        return Iterator(document: node.document, nextToken: first, end: end)
    }

    public var underestimatedCount: Int { count }
}

/// The entries of a bencoded dictionary, in their encoded (sorted, unique) key order.
public struct BencodeDictionary: Sequence, Sendable {
    let node: BencodeNode

    /// The number of keys.
    public var count: Int { node.count }

    /// One key and its value. `keyNode` gives the key's own byte range.
    public struct Entry: Sendable {
        /// The key, as a byte-string node.
        public let keyNode: BencodeNode
        /// The value stored under the key.
        public let value: BencodeNode
        /// The raw key bytes (no copy).
        public var key: ArraySlice<UInt8> { keyNode.byteString ?? [] }
    }

    /// Walks key/value pairs by jumping over each value's subtree.
    public struct Iterator: IteratorProtocol {
        let document: BencodeDocument
        var nextToken: Int
        let end: Int

        public mutating func next() -> Entry? {
            // The parser guarantees keys and values alternate, so a key is always followed by a value.
            guard nextToken < end else { return nil }
            let keyIndex = nextToken
            let valueIndex = document.tokens[keyIndex].subtreeEnd
            guard valueIndex < end else { return nil }
            nextToken = document.tokens[valueIndex].subtreeEnd
            return Entry(
                keyNode: BencodeNode(document: document, index: keyIndex),
                value: BencodeNode(document: document, index: valueIndex))
        }
    }

    public func makeIterator() -> Iterator {
        let (first, end) = node.childTokens
        return Iterator(document: node.document, nextToken: first, end: end)
    }

    public var underestimatedCount: Int { count }
}

/// The single-pass, non-recursive parser behind ``BencodeDocument``.
private struct Parser {
    /// An open list or dictionary.
    struct Frame {
        var token: Int
        var isDictionary: Bool
        /// For a dictionary: whether the next item is a key (else a value).
        var expectsKey: Bool
        /// For a dictionary: the payload range of the previous key, to check ordering.
        var previousKey: Range<Int>?
        /// Where this dictionary's keys start in `unsortedKeys` (when keys may come in any order).
        var firstUnsortedKey = 0
    }

    let bytes: [UInt8]
    let limits: BencodeLimits
    var position = 0
    var tokens: [BencodeToken] = []
    var stack: [Frame] = []
    /// The keys of the open dictionaries, innermost last, when keys may come in any order.
    var unsortedKeys: [Range<Int>] = []

    init(bytes: [UInt8], limits: BencodeLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    mutating func parse() throws(BencodeError) -> [BencodeToken] {
        guard bytes.count <= limits.maxInputBytes else {
            throw .inputTooLarge(byteCount: bytes.count, limit: limits.maxInputBytes)
        }
        repeat {
            try step()
        } while !stack.isEmpty
        guard position == bytes.count else { throw .trailingBytes(offset: position) }
        return tokens
    }

    /// Consumes one value start, one dictionary key, or one container end.
    mutating func step() throws(BencodeError) {
        if let top = stack.last {
            guard position < bytes.count else {
                throw .unexpectedEnd(
                    offset: position, expected: top.isDictionary && top.expectsKey ? .keyOrEnd : .value)
            }
            if bytes[position] == UInt8(ascii: "e") && (!top.isDictionary || top.expectsKey) {
                closeContainer()
                return
            }
            if top.isDictionary && top.expectsKey {
                try parseKey()
                return
            }
        }
        try parseValue()
    }

    mutating func parseValue() throws(BencodeError) {
        guard position < bytes.count else { throw .unexpectedEnd(offset: position, expected: .value) }
        let byte = bytes[position]
        switch byte {
        case UInt8(ascii: "i"):
            try appendToken(parseInteger())
            valueCompleted()
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            try appendToken(parseString())
            valueCompleted()
        case UInt8(ascii: "l"), UInt8(ascii: "d"):
            guard stack.count < limits.maxDepth else { throw .depthLimitExceeded(offset: position) }
            let kind: BencodeKind = byte == UInt8(ascii: "l") ? .list : .dictionary
            let token = BencodeToken(
                kind: kind, start: position, end: position, payloadStart: position, integer: 0, subtreeEnd: 0,
                childCount: 0)
            try appendToken(token)
            stack.append(
                Frame(
                    token: tokens.count - 1, isDictionary: kind == .dictionary, expectsKey: true,
                    previousKey: nil, firstUnsortedKey: unsortedKeys.count))
            position += 1
        default:
            throw .unexpectedByte(offset: position, found: byte, expected: .value)
        }
    }

    mutating func parseKey() throws(BencodeError) {
        let byte = bytes[position]
        guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else {
            throw .unexpectedByte(offset: position, found: byte, expected: .keyOrEnd)
        }
        let keyStart = position
        let key = try parseString()
        let keyPayload = key.payloadStart..<key.end
        let keyBytes = bytes[keyPayload]
        if limits.allowsUnsortedKeys {
            // Quadratic in the keys of one dictionary, which `maxElementCount` bounds.
            let ownKeys = unsortedKeys[stack[stack.count - 1].firstUnsortedKey...]
            if ownKeys.contains(where: { bytes[$0].elementsEqual(keyBytes) }) {
                throw .duplicateKey(offset: keyStart)
            }
            unsortedKeys.append(keyPayload)
        } else if let previous = stack[stack.count - 1].previousKey {
            let previousBytes = bytes[previous]
            if previousBytes.elementsEqual(keyBytes) { throw .duplicateKey(offset: keyStart) }
            guard previousBytes.lexicographicallyPrecedes(keyBytes) else {
                throw .unsortedKey(offset: keyStart)
            }
        }
        try appendToken(key)
        stack[stack.count - 1].previousKey = keyPayload
        stack[stack.count - 1].expectsKey = false
    }

    mutating func appendToken(_ token: BencodeToken) throws(BencodeError) {
        guard tokens.count < limits.maxElementCount else { throw .elementLimitExceeded(offset: token.start) }
        var token = token
        token.subtreeEnd = tokens.count + 1
        tokens.append(token)
        if let top = stack.last, !(top.isDictionary && !top.expectsKey) {
            // Count list elements and dictionary keys, not dictionary values.
            tokens[top.token].childCount += 1
        }
    }

    /// After a complete value, a dictionary goes back to expecting a key.
    mutating func valueCompleted() {
        if let top = stack.last, top.isDictionary {
            stack[stack.count - 1].expectsKey = true
        }
    }

    mutating func closeContainer() {
        let frame = stack.removeLast()
        if frame.isDictionary && limits.allowsUnsortedKeys {
            unsortedKeys.removeSubrange(frame.firstUnsortedKey...)
        }
        position += 1
        tokens[frame.token].end = position
        tokens[frame.token].subtreeEnd = tokens.count
        valueCompleted()
    }

    /// Reads decimal digits for a string length, rejecting leading zeros; `position` ends on the first
    /// non-digit.
    mutating func parseLength() throws(BencodeError) -> Int {
        let start = position
        var value = 0
        while position < bytes.count, bytes[position] >= UInt8(ascii: "0"),
            bytes[position] <= UInt8(ascii: "9")
        {
            if position > start && bytes[start] == UInt8(ascii: "0") { throw .leadingZero(offset: start) }
            let digit = Int(bytes[position] - UInt8(ascii: "0"))
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(digit)
            // Anything past the input size is rejected below anyway; this only keeps the arithmetic safe.
            guard !overflow1 && !overflow2 else {
                throw .stringLengthExceedsInput(offset: start, declaredLength: Int.max, availableBytes: 0)
            }
            value = sum
            position += 1
        }
        return value
    }

    mutating func parseString() throws(BencodeError) -> BencodeToken {
        let start = position
        let length = try parseLength()
        guard position < bytes.count else { throw .unexpectedEnd(offset: position, expected: .digitOrColon) }
        guard bytes[position] == UInt8(ascii: ":") else {
            throw .unexpectedByte(offset: position, found: bytes[position], expected: .digitOrColon)
        }
        position += 1
        let available = bytes.count - position
        guard length <= available else {
            throw .stringLengthExceedsInput(offset: start, declaredLength: length, availableBytes: available)
        }
        let payloadStart = position
        position += length
        return BencodeToken(
            kind: .byteString, start: start, end: position, payloadStart: payloadStart, integer: 0,
            subtreeEnd: 0,
            childCount: 0)
    }

    mutating func parseInteger() throws(BencodeError) -> BencodeToken {
        let start = position
        position += 1  // the `i`
        var negative = false
        if position < bytes.count && bytes[position] == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        let digitsStart = position
        // Accumulate as a negative number so that Int64.min is representable.
        var value: Int64 = 0
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "e") { break }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else {
                throw .unexpectedByte(
                    offset: position, found: byte, expected: position == digitsStart ? .digit : .digitOrEnd)
            }
            if position > digitsStart && bytes[digitsStart] == UInt8(ascii: "0") {
                throw .leadingZero(offset: digitsStart)
            }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflow1 && !overflow2 else { throw .integerOverflow(offset: start) }
            value = sum
            position += 1
        }
        guard position < bytes.count else {
            throw .unexpectedEnd(offset: position, expected: position == digitsStart ? .digit : .digitOrEnd)
        }
        guard position > digitsStart else {
            throw .unexpectedByte(offset: position, found: bytes[position], expected: .digit)
        }
        if negative && value == 0 { throw .negativeZero(offset: start) }
        if !negative {
            guard value != Int64.min else { throw .integerOverflow(offset: start) }
            value = -value
        }
        position += 1  // the `e`
        return BencodeToken(
            kind: .integer, start: start, end: position, payloadStart: start, integer: value, subtreeEnd: 0,
            childCount: 0)
    }
}
