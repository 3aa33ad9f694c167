import TorrentModel

/// The kind of `SHA1Digest`.
public enum SHA1Kind {}

/// A SHA-1 digest: 20 bytes stored inline, the same layout as an infohash but a different type; the
/// conversions below are the only ways from one to the other.
public typealias SHA1Digest = Bytes20<SHA1Kind>

extension InfoHash {
    /// The v1 infohash, which is the SHA-1 digest of the bencoded info dictionary (BEP 3).
    public init(v1Digest digest: SHA1Digest) {
        self.init(reinterpreting: digest)
    }

    /// A v2 infohash truncated to 20 bytes, as the handshake, trackers and the DHT carry it (BEP 52).
    public init(truncatingV2 digest: SHA256Digest) {
        self.init(filling: { out in
            digest.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        })
    }
}

/// A SHA-256 digest: 32 bytes, stored inline.
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible {
    @inlinable public static var byteCount: Int { 32 }
    // Inlinable, like `Bytes20`'s: unspecialized across modules, reading a digest out of a parsed
    // piece layer made a generic call per byte (a sixth of the builder fuzzer's time).
    @usableFromInline var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// A digest from exactly 32 bytes.
    @inlinable public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        withUnsafeMutableBytes(of: &storage) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
    }

    init(_ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        withUnsafeMutableBytes(of: &storage) { fill($0) }
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1 && a.storage.2 == b.storage.2
            && a.storage.3 == b.storage.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0)
        hasher.combine(storage.1)
        hasher.combine(storage.2)
        hasher.combine(storage.3)
    }

    /// The digest's bytes, valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage, body)
    }

    /// The 32 bytes as an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Lower-case hexadecimal.
    public var description: String { Hex.encode(bytes) }
}
