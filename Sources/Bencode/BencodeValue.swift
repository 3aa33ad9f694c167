/// A dictionary key: raw bytes, ordered the way BEP 3 sorts keys (as raw strings, byte by byte).
public struct BencodeKey: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible
{
    /// The raw key.
    public let bytes: [UInt8]

    /// A key from raw bytes.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// A key from a string's UTF-8 bytes.
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }

    public static func < (a: Self, b: Self) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

/// An owned bencoded value, for building messages and files to encode.
///
/// Dictionaries are unordered here and always encoded with their keys sorted, so ``encoded()`` is
/// canonical by construction.
public enum BencodeValue: Hashable, Sendable {
    case integer(Int64)
    case bytes([UInt8])
    case list([BencodeValue])
    case dictionary([BencodeKey: BencodeValue])

    /// A UTF-8 byte string.
    public static func string(_ string: String) -> BencodeValue { .bytes(Array(string.utf8)) }

    /// Copies a decoded value out of its document.
    ///
    /// Recursive, but only as deep as the document, which ``BencodeLimits/maxDepth`` bounded.
    public init(_ node: BencodeNode) {
        switch node.kind {
        case .integer:
            self = .integer(node.integer ?? 0)
        case .byteString:
            self = .bytes(Array(node.byteString ?? []))
        case .list:
            self = .list((node.list.map { Array($0) } ?? []).map { BencodeValue($0) })
        case .dictionary:
            var entries: [BencodeKey: BencodeValue] = [:]
            for entry in node.dictionary ?? BencodeDictionary(node: node) {
                entries[BencodeKey(Array(entry.key))] = BencodeValue(entry.value)
            }
            self = .dictionary(entries)
        }
    }

    /// Decodes a whole document into an owned value.
    public init(decoding bytes: [UInt8], limits: BencodeLimits = BencodeLimits()) throws(BencodeError) {
        self.init(try BencodeDocument(bytes: bytes, limits: limits).root)
    }

    /// The canonical encoding.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Appends the canonical encoding to `out`.
    public func encode(into out: inout [UInt8]) {
        switch self {
        case .integer(let value):
            Self.encodeInteger(value, into: &out)
        case .bytes(let bytes):
            Self.encodeString(bytes, into: &out)
        case .list(let elements):
            out.append(UInt8(ascii: "l"))
            for element in elements { element.encode(into: &out) }
            out.append(UInt8(ascii: "e"))
        case .dictionary(let entries):
            out.append(UInt8(ascii: "d"))
            for (key, value) in entries.sorted(by: { $0.key < $1.key }) {
                Self.encodeString(key.bytes, into: &out)
                value.encode(into: &out)
            }
            out.append(UInt8(ascii: "e"))
        }
    }

    static func encodeInteger(_ value: Int64, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "i"))
        if value < 0 { out.append(UInt8(ascii: "-")) }
        appendDecimal(value.magnitude, to: &out)
        out.append(UInt8(ascii: "e"))
    }

    static func encodeString(_ bytes: some Collection<UInt8>, into out: inout [UInt8]) {
        appendDecimal(UInt64(bytes.count), to: &out)
        out.append(UInt8(ascii: ":"))
        out.append(contentsOf: bytes)
    }

    /// Writes `value`'s digits straight into `out`: going through `String` allocated for every length
    /// and integer, which made encoding a DHT query or a metadata request mostly allocation.
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        } while divisor > 0
    }

    /// The integer, if this is one.
    public var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// The bytes, if this is a byte string.
    public var bytes: [UInt8]? {
        if case .bytes(let value) = self { value } else { nil }
    }

    /// The bytes as UTF-8, if this is a byte string holding valid UTF-8.
    public var string: String? {
        bytes.flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// The elements, if this is a list.
    public var list: [BencodeValue]? {
        if case .list(let value) = self { value } else { nil }
    }

    /// The entries, if this is a dictionary.
    public var dictionary: [BencodeKey: BencodeValue]? {
        if case .dictionary(let value) = self { value } else { nil }
    }

    /// The value for `key`, if this is a dictionary that has it.
    public subscript(key: BencodeKey) -> BencodeValue? {
        dictionary?[key]
    }
}

extension BencodeValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: BencodeValue...) { self = .list(elements) }
    /// Later duplicates of a key replace earlier ones.
    public init(dictionaryLiteral elements: (BencodeKey, BencodeValue)...) {
        self = .dictionary(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
