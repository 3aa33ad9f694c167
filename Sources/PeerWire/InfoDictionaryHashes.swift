import Hashing
import TorrentModel

/// The hashes downloaded metadata must match: what a magnet link names (`urn:btih` for v1, `urn:btmh`
/// for v2, or both for a hybrid torrent). The metadata is the info dictionary, so a v1 infohash is its
/// SHA-1 and a v2 infohash its SHA-256.
public struct InfoDictionaryHashes: Hashable, Sendable {
    /// The v1 infohash, if known.
    public let v1: InfoHash?
    /// The full v2 infohash, if known.
    public let v2: SHA256Digest?

    /// Nil when neither hash is given: there would be nothing to check the metadata against.
    public init?(v1: InfoHash?, v2: SHA256Digest?) {
        guard v1 != nil || v2 != nil else { return nil }
        self.v1 = v1
        self.v2 = v2
    }

    /// Whether `infoDictionary` hashes to every hash given.
    public func matches(_ infoDictionary: [UInt8]) -> Bool {
        if let v1, InfoHash(v1Digest: SHA1.hash(infoDictionary)) != v1 { return false }
        if let v2, SHA256.hash(infoDictionary) != v2 { return false }
        return true
    }
}
