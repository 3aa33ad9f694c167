/// Limits on what the decoder accepts. Bencoded input comes from files, peers and trackers, so every
/// dimension that could make decoding cost more memory or time than the caller planned for is bounded.
public struct BencodeLimits: Hashable, Sendable {
    /// The deepest nesting of lists and dictionaries; the root container is at depth 1.
    public var maxDepth: Int
    /// The most values (integers, strings, lists, dictionaries; keys count too) in one document.
    public var maxElementCount: Int
    /// The largest input, in bytes.
    public var maxInputBytes: Int
    /// Accept dictionary keys out of order, as some DHT clients send them (BEP 3 wants them sorted, and
    /// metainfo must be, or its info hash would not be reproducible). Repeated keys are refused anyway.
    public var allowsUnsortedKeys = false

    /// - Parameters:
    ///   - maxDepth: libtorrent uses 100 too; real torrents nest fewer than 10 levels deep.
    ///   - maxElementCount: 2 million, enough for a torrent with hundreds of thousands of files.
    ///   - maxInputBytes: 64 MiB, larger than any sane metainfo file.
    public init(maxDepth: Int = 100, maxElementCount: Int = 2_000_000, maxInputBytes: Int = 64 * 1024 * 1024)
    {
        self.maxDepth = maxDepth
        self.maxElementCount = maxElementCount
        self.maxInputBytes = maxInputBytes
    }
}

/// Why the decoder rejected its input. Every case carries the byte offset into the input where the
/// problem was found, so a bad file or message can be inspected with a hex dump.
public enum BencodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What the decoder was looking for when it found something else.
    public enum Expectation: Hashable, Sendable, CustomStringConvertible {
        /// The start of a value: `i`, `l`, `d` or a digit.
        case value
        /// A decimal digit.
        case digit
        /// A digit or the `:` that ends a string's length.
        case digitOrColon
        /// A digit or the `e` that ends an integer.
        case digitOrEnd
        /// A dictionary key (a byte string) or the `e` that ends the dictionary.
        case keyOrEnd

        public var description: String {
            switch self {
            case .value: "a value (i, l, d or a digit)"
            case .digit: "a digit"
            case .digitOrColon: "a digit or ':'"
            case .digitOrEnd: "a digit or 'e'"
            case .keyOrEnd: "a byte-string key or 'e'"
            }
        }
    }

    /// The input ended where `expected` was required.
    case unexpectedEnd(offset: Int, expected: Expectation)
    /// The byte at `offset` is not what the grammar allows there.
    case unexpectedByte(offset: Int, found: UInt8, expected: Expectation)
    /// An integer or string length written with a leading zero (`i03e`, `03:abc`), which BEP 3 forbids.
    case leadingZero(offset: Int)
    /// `i-0e`, which BEP 3 forbids.
    case negativeZero(offset: Int)
    /// An integer that does not fit in 64 bits.
    case integerOverflow(offset: Int)
    /// A byte string whose declared length runs past the end of the input.
    case stringLengthExceedsInput(offset: Int, declaredLength: Int, availableBytes: Int)
    /// A dictionary key that is not strictly greater, in raw byte order, than the key before it.
    case unsortedKey(offset: Int)
    /// A dictionary key equal to the key before it.
    case duplicateKey(offset: Int)
    /// Bytes after the end of the root value.
    case trailingBytes(offset: Int)
    /// A list or dictionary nested deeper than `BencodeLimits.maxDepth`.
    case depthLimitExceeded(offset: Int)
    /// More values than `BencodeLimits.maxElementCount`.
    case elementLimitExceeded(offset: Int)
    /// Input longer than `BencodeLimits.maxInputBytes`.
    case inputTooLarge(byteCount: Int, limit: Int)

    /// The byte offset the error refers to.
    public var offset: Int {
        switch self {
        case .unexpectedEnd(let offset, _), .unexpectedByte(let offset, _, _), .leadingZero(let offset),
            .negativeZero(let offset), .integerOverflow(let offset),
            .stringLengthExceedsInput(let offset, _, _),
            .unsortedKey(let offset), .duplicateKey(let offset), .trailingBytes(let offset),
            .depthLimitExceeded(let offset), .elementLimitExceeded(let offset):
            offset
        case .inputTooLarge: 0
        }
    }

    public var description: String {
        switch self {
        case .unexpectedEnd(let offset, let expected):
            "input ends at offset \(offset), expected \(expected)"
        case .unexpectedByte(let offset, let found, let expected):
            "unexpected byte 0x\(String(found, radix: 16)) at offset \(offset), expected \(expected)"
        case .leadingZero(let offset): "number with a leading zero at offset \(offset)"
        case .negativeZero(let offset): "negative zero at offset \(offset)"
        case .integerOverflow(let offset): "integer at offset \(offset) does not fit in 64 bits"
        case .stringLengthExceedsInput(let offset, let declared, let available):
            "string at offset \(offset) declares \(declared) bytes but only \(available) remain"
        case .unsortedKey(let offset): "dictionary key at offset \(offset) is out of order"
        case .duplicateKey(let offset): "duplicate dictionary key at offset \(offset)"
        case .trailingBytes(let offset): "trailing bytes after the root value at offset \(offset)"
        case .depthLimitExceeded(let offset): "nesting too deep at offset \(offset)"
        case .elementLimitExceeded(let offset): "too many elements at offset \(offset)"
        case .inputTooLarge(let count, let limit): "input of \(count) bytes exceeds the limit of \(limit)"
        }
    }
}
