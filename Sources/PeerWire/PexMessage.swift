import Bencode

/// What a BEP 11 flag byte says about an added peer.
public struct PexFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The peer prefers encrypted connections (the `e` of its extension handshake).
    public static let prefersEncryption = PexFlags(rawValue: 0x01)
    /// The peer is a seed (or upload-only).
    public static let seed = PexFlags(rawValue: 0x02)
    /// The peer supports uTP.
    public static let supportsUTP = PexFlags(rawValue: 0x04)
    /// The peer announced `ut_holepunch` in its extension handshake.
    public static let supportsHolepunch = PexFlags(rawValue: 0x08)
    /// The sender connected to the peer (an outgoing connection), so the peer accepts connections.
    public static let reachable = PexFlags(rawValue: 0x10)
}

/// A peer in a PEX message's `added` lists, with its flags.
public struct PexPeer: Hashable, Sendable {
    public var address: PeerAddress
    public var flags: PexFlags

    public init(address: PeerAddress, flags: PexFlags = []) {
        self.address = address
        self.flags = flags
    }
}

/// A BEP 11 `ut_pex` message: the payload of an extended message sent with the id the peer gave
/// `ut_pex` in its extension handshake.
///
/// The IPv4 and IPv6 lists of the wire (`added`/`added6`, `added.f`/`added6.f`, `dropped`/`dropped6`)
/// are one list each here, split by family when encoded. Decoding keeps at most
/// ``maximumContactsKeptPerKey`` entries of each key and ignores the rest, and refuses a list whose
/// length is not a whole number of entries or whose flags do not match it one for one.
public struct PexMessage: Hashable, Sendable {
    /// How many added, and how many dropped, contacts a message should carry at most (BEP 11; both
    /// families together).
    public static let maximumContactsPerMessage = 50
    /// How many entries of each key decoding keeps. Above ``maximumContactsPerMessage`` because BEP 11
    /// lets a sender's first message be larger; the rest of a longer list is ignored.
    public static let maximumContactsKeptPerKey = 100
    /// The largest payload decoded: room for several hundred IPv6 contacts with flags.
    public static let maximumPayloadBytes = 16 * 1024

    /// Peers the sender connected to since its last message.
    public var added: [PexPeer]
    /// Peers the sender disconnected from since its last message.
    public var dropped: [PeerAddress]

    public init(added: [PexPeer] = [], dropped: [PeerAddress] = []) {
        self.added = added
        self.dropped = dropped
    }

    /// Why a `ut_pex` payload was refused.
    public enum DecodingError: Error, Hashable, Sendable {
        case malformed(BencodeError)
        case notADictionary
        /// None of `added`, `added6`, `dropped`, `dropped6` is present, which BEP 11 requires.
        case noContactLists
        /// A contact list that is not a byte string, or whose length is not a multiple of its entry size.
        case malformedContacts(key: String, byteCount: Int)
        /// A flags string (`added.f`, `added6.f`) that is not a byte string, or does not have exactly one
        /// byte per contact.
        case flagsCountMismatch(key: String, flagCount: Int, contactCount: Int)
    }

    /// Parses an extended message's payload.
    public init(decoding payload: [UInt8]) throws(DecodingError) {
        let document: BencodeDocument
        do {
            document = try BencodeDocument(
                bytes: payload,
                limits: BencodeLimits(
                    maxDepth: 4, maxElementCount: 256, maxInputBytes: Self.maximumPayloadBytes))
        } catch {
            throw .malformed(error)
        }
        let root = document.root
        guard root.kind == .dictionary else { throw .notADictionary }
        guard ["added", "added6", "dropped", "dropped6"].contains(where: { root[$0] != nil }) else {
            throw .noContactLists
        }
        self.init()
        for (key, flagsKey) in [("added", "added.f"), ("added6", "added6.f")] {
            let addresses = try Self.contacts(root, key, entryByteCount: key == "added" ? 6 : 18)
            let flags = try Self.flags(root, flagsKey, contactCount: addresses.total)
            for (index, address) in addresses.kept.enumerated() {
                added.append(PexPeer(address: address, flags: PexFlags(rawValue: flags?[index] ?? 0)))
            }
        }
        dropped += try Self.contacts(root, "dropped", entryByteCount: 6).kept
        dropped += try Self.contacts(root, "dropped6", entryByteCount: 18).kept
    }

    /// The first ``maximumContactsKeptPerKey`` contacts under `key`, and how many the list holds.
    private static func contacts(
        _ root: BencodeNode, _ key: String, entryByteCount: Int
    ) throws(DecodingError) -> (kept: [PeerAddress], total: Int) {
        guard let node = root[key] else { return ([], 0) }
        guard let bytes = node.byteString, bytes.count % entryByteCount == 0 else {
            throw .malformedContacts(key: key, byteCount: node.byteString?.count ?? -1)
        }
        let total = bytes.count / entryByteCount
        let kept = (0..<min(total, maximumContactsKeptPerKey)).compactMap { index in
            let start = bytes.startIndex + index * entryByteCount
            return PeerAddress(compact: bytes[start..<start + entryByteCount])
        }
        return (kept, total)
    }

    /// The flag bytes under `key`, which must number exactly `contactCount` if present.
    private static func flags(
        _ root: BencodeNode, _ key: String, contactCount: Int
    ) throws(DecodingError) -> [UInt8]? {
        guard let node = root[key] else { return nil }
        guard let bytes = node.byteString, bytes.count == contactCount else {
            throw .flagsCountMismatch(
                key: key, flagCount: node.byteString?.count ?? -1, contactCount: contactCount)
        }
        return Array(bytes)
    }

    /// The payload to send. `added` and `dropped` are always present (empty when there is nothing to
    /// say), so every message carries a contact list; the IPv6 keys and the flags appear when non-empty.
    public func encoded() -> [UInt8] {
        let added4 = added.filter { !$0.address.isIPv6 }
        let added6 = added.filter { $0.address.isIPv6 }
        let dropped6 = dropped.filter { $0.isIPv6 }
        var writer = BencodeWriter(reservingCapacity: 64 + 19 * added.count + 18 * dropped.count)
        // Keys in BEP 3's order: added, added.f, added6, added6.f, dropped, dropped6.
        writer.beginDictionary()
        writer.key("added")
        writer.string(Self.compact(added4.lazy.map { $0.address }))
        if !added4.isEmpty {
            writer.key("added.f")
            writer.string(added4.map { $0.flags.rawValue })
        }
        if !added6.isEmpty {
            writer.key("added6")
            writer.string(Self.compact(added6.lazy.map { $0.address }))
            writer.key("added6.f")
            writer.string(added6.map { $0.flags.rawValue })
        }
        writer.key("dropped")
        writer.string(Self.compact(dropped.filter { !$0.isIPv6 }))
        if !dropped6.isEmpty {
            writer.key("dropped6")
            writer.string(Self.compact(dropped6))
        }
        writer.end()
        return writer.bytes
    }

    private static func compact(_ addresses: some Sequence<PeerAddress>) -> [UInt8] {
        var compact: [UInt8] = []
        for address in addresses { address.appendCompact(to: &compact) }
        return compact
    }
}
