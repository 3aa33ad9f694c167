import Hashing
import TorrentModel

/// RC4 as BitTorrent's protocol encryption uses it: keyed with a SHA-1 digest, the first 1024 bytes of
/// keystream thrown away. Only the encryption handshake's few bytes go through it here.
struct RC4: Sendable {
    private var state = [UInt8](0...255)
    private var i: UInt8 = 0
    private var j: UInt8 = 0

    init(key: [UInt8], discarding discardCount: Int = 1024) {
        precondition(!key.isEmpty, "an RC4 key is at least one byte")
        var j: UInt8 = 0
        for i in 0..<256 {
            j = j &+ state[i] &+ key[i % key.count]
            state.swapAt(i, Int(j))
        }
        var discarded = [UInt8](repeating: 0, count: discardCount)
        apply(to: &discarded[...])
    }

    /// XORs the keystream into `bytes` (encrypting and decrypting are the same).
    mutating func apply(to bytes: inout ArraySlice<UInt8>) {
        for index in bytes.indices {
            i = i &+ 1
            j = j &+ state[Int(i)]
            state.swapAt(Int(i), Int(j))
            bytes[index] ^= state[Int(state[Int(i)] &+ state[Int(j)])]
        }
    }
}

/// The answering side of BitTorrent's protocol encryption (MSE/PE, the Vuze "Message Stream
/// Encryption" specification), for incoming connections that do not open with the plaintext handshake.
/// A pure state machine: feed it the peer's bytes; send what ``takeOutbound()`` returns.
///
/// The exchange: the peer sends its Diffie-Hellman key `Ya` and up to 512 bytes of padding; we answer
/// with `Yb` and padding; it sends `HASH('req1', S)` (where our reading syncs, after its padding),
/// `HASH('req2', infohash) xor HASH('req3', S)` (which names the torrent without revealing it), then,
/// RC4-encrypted with `HASH('keyA', S, infohash)`: 8 zero bytes, the methods it offers, padding and
/// its initial payload (usually the BitTorrent handshake). We answer, RC4-encrypted with
/// `HASH('keyB', S, infohash)`: 8 zero bytes and the method chosen.
///
/// Potluck chooses plaintext: after the exchange both directions carry the plain peer wire, so uploads
/// stay zero-copy. A peer that offers only RC4 is refused with ``Failure/plaintextNotOffered(_:)``.
///
/// Invariants: at most `96 + 512 + 20` bytes wait before synchronisation, and no more than one field
/// (at most 65535 bytes of initial payload) after it; each received byte is decrypted exactly once.
public struct EncryptionHandshakeResponder: Sendable {
    /// Why an encrypted handshake was refused.
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// The peer's Diffie-Hellman key is 0, 1, P-1 or not below P.
        case invalidPublicKey
        /// `HASH('req1', S)` did not follow within 512 bytes of padding.
        case noSynchronization
        /// The torrent it names is not one we serve.
        case unknownTorrent
        /// The 8 zero bytes decrypted to something else: the keys disagree.
        case badVerification
        /// More than 512 bytes of padding announced.
        case paddingTooLong(Int)
        /// The peer offers RC4 only (its crypto_provide bits).
        case plaintextNotOffered(UInt32)

        public var description: String {
            switch self {
            case .invalidPublicKey: "the peer's Diffie-Hellman key is invalid"
            case .noSynchronization: "no synchronisation hash within 512 bytes of padding"
            case .unknownTorrent: "it asks for a torrent we do not serve"
            case .badVerification: "the verification bytes do not decrypt to zeros"
            case .paddingTooLong(let length): "\(length) bytes of padding announced (at most 512)"
            case .plaintextNotOffered(let provided):
                "it offers only RC4 (crypto_provide \(provided)); Potluck speaks plaintext after the exchange"
            }
        }
    }

    /// Where the exchange stands.
    public enum Step: Sendable, Equatable {
        case needMoreBytes
        /// Done: the torrent the peer asked for, and the plain peer-wire bytes that followed (its
        /// initial payload first).
        case established(infoHash: InfoHash, plaintext: [UInt8])
    }

    static let maximumPadding = 512
    static let verificationConstant = [UInt8](repeating: 0, count: 8)
    static let plaintextMethod: UInt32 = 0x01

    private enum Phase {
        case awaitingPublicKey
        case synchronizing(secret: [UInt8], marker: [UInt8])
        case identifying(secret: [UInt8])
        case readingHeader(Cipher)
        case readingPadding(Cipher, length: Int)
        case readingPayloadLength(Cipher)
        case readingPayload(Cipher, length: Int)
        case done
    }

    /// The negotiated streams and the torrent.
    private struct Cipher {
        var incoming: RC4
        var outgoing: RC4
        let infoHash: InfoHash
    }

    private let torrents: EncryptedTorrentIndex
    private let privateKey: [UInt8]
    private let padding: [UInt8]
    private var phase = Phase.awaitingPublicKey
    private var received: [UInt8] = []
    private var outbound: [UInt8] = []

    /// `privateKey`: 20 or more random bytes (the specification asks for at least 160 bits).
    /// `padding`: random bytes sent after our key (0 to 512 of them).
    public init(torrents: EncryptedTorrentIndex, privateKey: [UInt8], padding: [UInt8]) {
        precondition(privateKey.count >= 20, "an MSE private key has at least 160 bits")
        precondition(padding.count <= Self.maximumPadding, "at most 512 bytes of padding")
        self.torrents = torrents
        self.privateKey = privateKey
        self.padding = padding
    }

    public init(knownInfoHashes: [InfoHash], privateKey: [UInt8], padding: [UInt8]) {
        self.init(
            torrents: EncryptedTorrentIndex(knownInfoHashes), privateKey: privateKey, padding: padding)
    }

    /// Bytes to send to the peer now (our key, then our answer).
    public mutating func takeOutbound() -> [UInt8] {
        defer { outbound.removeAll() }
        return outbound
    }

    /// Feeds bytes from the peer, in order, in chunks of any size.
    public mutating func receive(_ bytes: some Collection<UInt8>) throws(Failure) -> Step {
        precondition(!isDone, "the exchange is over; the rest is plain peer wire")
        received.append(contentsOf: bytes)
        while true {
            switch phase {
            case .awaitingPublicKey:
                let keyLength = StreamEncryptionKeyExchange.keyByteCount
                guard received.count >= keyLength else { return .needMoreBytes }
                let peerKey = Array(received[..<keyLength])
                received.removeFirst(keyLength)
                guard
                    let secret = StreamEncryptionKeyExchange.sharedSecret(
                        privateKey: privateKey, peerPublicKey: peerKey)
                else { throw .invalidPublicKey }
                outbound += StreamEncryptionKeyExchange.publicKey(privateKey: privateKey) + padding
                phase = .synchronizing(secret: secret, marker: Self.hash("req1", secret))
            case .synchronizing(let secret, let marker):
                guard let start = Self.firstIndex(of: marker, in: received) else {
                    if received.count >= Self.maximumPadding + marker.count { throw .noSynchronization }
                    return .needMoreBytes
                }
                guard start <= Self.maximumPadding else { throw .noSynchronization }
                received.removeFirst(start + marker.count)
                phase = .identifying(secret: secret)
            case .identifying(let secret):
                guard received.count >= 20 else { return .needMoreBytes }
                let obfuscated = Array(received[..<20])
                received.removeFirst(20)
                let mask = Self.hash("req3", secret)
                guard let infoHash = torrents.infoHash(named: zip(obfuscated, mask).map { $0 ^ $1 }) else {
                    throw .unknownTorrent
                }
                phase = .readingHeader(
                    Cipher(
                        incoming: RC4(key: Self.hash("keyA", secret + infoHash.bytes)),
                        outgoing: RC4(key: Self.hash("keyB", secret + infoHash.bytes)), infoHash: infoHash))
            case .readingHeader(var cipher):
                guard var header = take(14, decryptingWith: &cipher.incoming) else { return .needMoreBytes }
                guard Array(header[0..<8]) == Self.verificationConstant else { throw .badVerification }
                let provided = header[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                let paddingLength = Int(header[12]) << 8 | Int(header[13])
                guard paddingLength <= Self.maximumPadding else { throw .paddingTooLong(paddingLength) }
                guard provided & Self.plaintextMethod != 0 else { throw .plaintextNotOffered(provided) }
                header.removeAll()
                phase = .readingPadding(cipher, length: paddingLength)
            case .readingPadding(var cipher, let length):
                guard take(length, decryptingWith: &cipher.incoming) != nil else { return .needMoreBytes }
                phase = .readingPayloadLength(cipher)
            case .readingPayloadLength(var cipher):
                guard let field = take(2, decryptingWith: &cipher.incoming) else { return .needMoreBytes }
                phase = .readingPayload(cipher, length: Int(field[0]) << 8 | Int(field[1]))
            case .readingPayload(var cipher, let length):
                guard let initialPayload = take(length, decryptingWith: &cipher.incoming) else {
                    return .needMoreBytes
                }
                // VC, crypto_select = plaintext, no padding; encrypted with our stream.
                var answer = Self.verificationConstant[...] + [0, 0, 0, UInt8(Self.plaintextMethod), 0, 0]
                cipher.outgoing.apply(to: &answer)
                outbound += answer
                phase = .done
                let plaintext = initialPayload + received
                received.removeAll()
                return .established(infoHash: cipher.infoHash, plaintext: plaintext)
            case .done:
                preconditionFailure("unreachable: checked on entry")
            }
        }
    }

    private var isDone: Bool {
        if case .done = phase { return true }
        return false
    }

    /// The next `count` received bytes, decrypted, or nil (and nothing consumed) if they have not all
    /// arrived.
    private mutating func take(_ count: Int, decryptingWith cipher: inout RC4) -> [UInt8]? {
        guard received.count >= count else { return nil }
        var field = received[..<count]
        cipher.apply(to: &field)
        received.removeFirst(count)
        return Array(field)
    }

    static func hash(_ label: String, _ bytes: [UInt8]) -> [UInt8] {
        SHA1.hash(Array(label.utf8) + bytes).bytes
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start] == needle[0] && haystack[start..<start + needle.count].elementsEqual(needle) {
            return start
        }
        return nil
    }
}

/// The torrents an encrypted peer may ask for, by what it sends for each (`HASH('req2', infohash)`),
/// so that one lookup finds the torrent however many there are: hashing every candidate for each
/// connection let anyone make the listening reactor hash 10,000 times per connection.
public struct EncryptedTorrentIndex: Sendable {
    private var byRequest: [[UInt8]: InfoHash] = [:]

    public init(_ infoHashes: some Sequence<InfoHash> = []) {
        for infoHash in infoHashes { insert(infoHash) }
    }

    public mutating func insert(_ infoHash: InfoHash) {
        byRequest[EncryptionHandshakeResponder.hash("req2", infoHash.bytes)] = infoHash
    }

    public mutating func remove(_ infoHash: InfoHash) {
        byRequest[EncryptionHandshakeResponder.hash("req2", infoHash.bytes)] = nil
    }

    func infoHash(named request: [UInt8]) -> InfoHash? { byRequest[request] }
}
