/// Writes bencoding straight into bytes, for messages whose shape is known in advance (a DHT query, a
/// metadata request): no ``BencodeValue`` tree, no dictionary to sort, one growing array.
///
/// The caller writes each dictionary's keys in ascending byte order, as BEP 3 requires. Nothing here
/// checks it: a message written out of order is refused by ``BencodeDocument`` under its default
/// limits, which is how a writer's tests find the mistake.
public struct BencodeWriter: Sendable {
    /// What has been written so far.
    public private(set) var bytes: [UInt8] = []

    public init(reservingCapacity capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// Opens a dictionary; ``end()`` closes it.
    public mutating func beginDictionary() { bytes.append(UInt8(ascii: "d")) }

    /// Opens a list; ``end()`` closes it.
    public mutating func beginList() { bytes.append(UInt8(ascii: "l")) }

    /// Closes the innermost open dictionary or list.
    public mutating func end() { bytes.append(UInt8(ascii: "e")) }

    /// A dictionary key (or any byte string) spelled in the source.
    public mutating func key(_ key: StaticString) {
        key.withUTF8Buffer { BencodeValue.encodeString($0, into: &bytes) }
    }

    /// A byte string. (Concrete types, not a generic collection: called from another module, a generic
    /// would not be specialised.)
    public mutating func string(_ string: [UInt8]) { BencodeValue.encodeString(string, into: &bytes) }

    /// A byte string read in place (an identifier's bytes, say, without making an array of them).
    public mutating func string(_ string: UnsafeRawBufferPointer) {
        BencodeValue.encodeString(string, into: &bytes)
    }

    /// A text's UTF-8 bytes as a byte string.
    public mutating func string(_ text: String) { BencodeValue.encodeString(text.utf8, into: &bytes) }

    /// An integer.
    public mutating func integer(_ value: Int64) { BencodeValue.encodeInteger(value, into: &bytes) }
}
