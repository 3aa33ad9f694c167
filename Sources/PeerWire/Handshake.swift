import TorrentModel

/// The eight reserved bytes of the handshake, as a set of capability bits.
///
/// The raw value is the eight bytes read as one big-endian integer, so `reserved[7] & 0x04` is bit 2 and
/// `reserved[5] & 0x10` is bit 20. Bits we do not know are kept, so a handshake round-trips exactly.
public struct ReservedBits: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// BEP 5: the peer runs a DHT node and may send `port` (`reserved[7] & 0x01`).
    public static let dht = ReservedBits(rawValue: 0x01)
    /// BEP 6: the fast extension (`reserved[7] & 0x04`); in effect only when both sides set it.
    public static let fastExtension = ReservedBits(rawValue: 0x04)
    /// BEP 10: the extension protocol (`reserved[5] & 0x10`).
    public static let extensionProtocol = ReservedBits(rawValue: 0x10 << 16)

    /// The reserved byte at `index` (0...7) as it appears on the wire.
    public func byte(at index: Int) -> UInt8 {
        precondition((0..<8).contains(index), "the handshake has eight reserved bytes")
        return UInt8(truncatingIfNeeded: rawValue >> UInt64(8 * (7 - index)))
    }

    public var description: String {
        var names: [String] = []
        if contains(.dht) { names.append("dht") }
        if contains(.fastExtension) { names.append("fast") }
        if contains(.extensionProtocol) { names.append("extension") }
        let known: ReservedBits = [.dht, .fastExtension, .extensionProtocol]
        let other = subtracting(known).rawValue
        if other != 0 { names.append("other 0x" + String(other, radix: 16)) }
        return "[" + names.joined(separator: ", ") + "]"
    }
}

/// The BEP 3 handshake: `\x13BitTorrent protocol`, 8 reserved bytes, the infohash and the peer id.
public struct Handshake: Hashable, Sendable {
    /// The protocol string, preceded on the wire by its length (19).
    public static let protocolName: [UInt8] = Array("BitTorrent protocol".utf8)
    /// 1 + 19 + 8 + 20 + 20.
    public static let byteCount = 68

    public var reserved: ReservedBits
    public var infoHash: InfoHash
    public var peerID: PeerID

    public init(reserved: ReservedBits, infoHash: InfoHash, peerID: PeerID) {
        self.reserved = reserved
        self.infoHash = infoHash
        self.peerID = peerID
    }

    /// Appends the 68-byte handshake to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        buffer.append(UInt8(Self.protocolName.count))
        buffer.append(contentsOf: Self.protocolName)
        buffer.appendBigEndian(reserved.rawValue)
        infoHash.withUnsafeBytes { buffer.append(contentsOf: $0) }
        peerID.withUnsafeBytes { buffer.append(contentsOf: $0) }
    }

    /// Parses a complete handshake from exactly `Handshake.byteCount` bytes.
    ///
    /// A reactor that serves several torrents on one port can use this to read the infohash before it
    /// picks the torrent; `WireDecoder` parses handshakes incrementally.
    public init(parsing bytes: Span<UInt8>) throws(DisconnectReason) {
        guard bytes.count == Self.byteCount else {
            throw .malformedHandshake(detail: "expected \(Self.byteCount) bytes, received \(bytes.count)")
        }
        try Self.checkPrefix(bytes)
        let reserved = ReservedBits(rawValue: bytes.readBigEndianUInt64(at: 20))
        guard let infoHash = InfoHash(bytes.copyBytes(28..<48)), let peerID = PeerID(bytes.copyBytes(48..<68))
        else {
            // Unreachable: both ranges are 20 bytes long.
            throw .malformedHandshake(detail: "identifier length")
        }
        self.init(reserved: reserved, infoHash: infoHash, peerID: peerID)
    }

    /// Checks the length byte and as much of the protocol name as `bytes` holds, so a peer speaking
    /// another protocol is refused at its first byte rather than after 68.
    static func checkPrefix(_ bytes: Span<UInt8>) throws(DisconnectReason) {
        guard !bytes.isEmpty else { return }
        guard bytes[0] == UInt8(protocolName.count) else {
            throw .malformedHandshake(detail: "protocol name length \(bytes[0]), expected 19")
        }
        let end = min(bytes.count, 1 + protocolName.count)
        for i in 1..<max(end, 1) where bytes[i] != protocolName[i - 1] {
            throw .malformedHandshake(detail: "protocol name is not 'BitTorrent protocol'")
        }
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendBigEndian(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    mutating func appendBigEndian(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    mutating func appendBigEndian(_ value: UInt64) {
        appendBigEndian(UInt32(truncatingIfNeeded: value >> 32))
        appendBigEndian(UInt32(truncatingIfNeeded: value))
    }

    /// Appends the elements of a span.
    @inline(__always)
    mutating func append(span: Span<UInt8>) {
        span.withUnsafeBufferPointer { append(contentsOf: $0) }
    }
}

extension Span where Element == UInt8 {
    @inline(__always)
    func readBigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }

    @inline(__always)
    func readBigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func readBigEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(readBigEndianUInt32(at: offset)) << 32 | UInt64(readBigEndianUInt32(at: offset + 4))
    }

    /// A copy of a sub-range; only for small, rare things such as identifiers.
    func copyBytes(_ range: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        for i in range { out.append(self[i]) }
        return out
    }
}

/// Which torrent an incoming connection is for, from the first bytes of the initiator's handshake
/// (BEP 3: the initiator speaks first, and bytes 28..<48 are the info hash). Lets one listening socket
/// serve several torrents: the connection is handed, unread, to the torrent it names.
public enum HandshakePrefix: Equatable, Sendable {
    /// The bytes needed to decide.
    public static let byteCount = 1 + 19 + 8 + 20

    case needMore
    case infoHash(InfoHash)
    /// Not a plain BitTorrent handshake (another protocol, or an encrypted one, BEP 8/MSE).
    case notBitTorrent

    public static func classify(_ bytes: some Collection<UInt8>) -> HandshakePrefix {
        var index = 0
        var hash: [UInt8] = []
        for byte in bytes.prefix(byteCount) {
            switch index {
            case 0:
                guard byte == UInt8(Handshake.protocolName.count) else { return .notBitTorrent }
            case 1...19:
                guard byte == Handshake.protocolName[index - 1] else { return .notBitTorrent }
            case 20..<28:
                break
            default:
                if hash.isEmpty { hash.reserveCapacity(20) }
                hash.append(byte)
            }
            index += 1
        }
        guard index == byteCount, let infoHash = InfoHash(hash) else { return .needMore }
        return .infoHash(infoHash)
    }
}
