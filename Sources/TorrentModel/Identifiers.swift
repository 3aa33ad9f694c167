/// The index of a piece within a torrent. Only `PieceGeometry` creates checked ones from outside input.
public struct PieceIndex: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }
    public init(_ value: Int) { self.value = UInt32(value) }

    public var int: Int { Int(value) }
    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    public var description: String { "piece \(value)" }
}

/// 20 bytes stored inline as three words, tagged with what they identify so that an infohash, a peer id
/// and a SHA-1 digest cannot be passed for one another: each is its own type (``InfoHash``, ``PeerID``,
/// `SHA1Digest`) and converting between them is always a named initializer.
///
/// `Kind` is a phantom: it is never stored, so every kind has the same layout, equality and hashing.
public struct Bytes20<Kind>: Hashable, Sendable, CustomStringConvertible {
    @inlinable public static var byteCount: Int { 20 }
    // Inlinable, like the members below: unspecialized across modules, each call on an id looked up
    // generic metadata at run time (a sixth of a DHT simulation's time).
    @usableFromInline var storage: (UInt64, UInt64, UInt32) = (0, 0, 0)

    /// Exactly 20 bytes, or nil.
    @inlinable public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        withUnsafeMutableBytes(of: &storage) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
    }

    /// 40 hexadecimal digits, upper- or lower-case, or nil.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes)
    }

    /// 20 bytes written by `fill` (a digest being finished, say), with no intermediate array.
    package init(filling fill: (UnsafeMutableRawBufferPointer) -> Void) {
        withUnsafeMutableBytes(of: &storage) { fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<20])) }
    }

    /// The same bytes as another kind. Package-only: public conversions name why they are sound
    /// (`InfoHash(v1Digest:)`, say) and are built on this one.
    package init<Other>(reinterpreting other: Bytes20<Other>) {
        storage = other.storage
    }

    @inlinable public static func == (a: Self, b: Self) -> Bool {
        a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1 && a.storage.2 == b.storage.2
    }

    @inlinable public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0)
        hasher.combine(storage.1)
        hasher.combine(storage.2)
    }

    /// The bytes, valid only inside `body`.
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
    }

    @inlinable public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Lower-case hexadecimal.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
}

/// The kind of ``InfoHash``.
public enum InfoHashKind {}
/// The kind of ``PeerID``.
public enum PeerIDKind {}
/// The kind of ``NodeID``.
public enum NodeIDKind {}

/// The infohash as used on the wire and by trackers: the v1 infohash (SHA-1 of the bencoded info
/// dictionary) or a v2 infohash truncated to 20 bytes.
public typealias InfoHash = Bytes20<InfoHashKind>
/// A peer's 20-byte id from its handshake.
public typealias PeerID = Bytes20<PeerIDKind>
/// A DHT node's 20-byte id (BEP 5), in the same 160-bit space as infohashes.
public typealias NodeID = Bytes20<NodeIDKind>

/// Hexadecimal codec for identifiers.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes upper- or lower-case hex; nil for odd length or a non-hex character.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let high = nibble(utf8[i]), let low = nibble(utf8[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
