import Hashing
import Testing
import TorrentModel

@testable import PeerWire

/// The initiating side of MSE/PE as the specification describes it, written out step by step here to
/// drive the responder (libtorrent and aria2 play it for real in the interop tests).
struct TestInitiator {
    let privateKey = (0..<20).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let infoHash: InfoHash
    var provide: UInt32 = 0x03
    var verification = [UInt8](repeating: 0, count: 8)
    var secret: [UInt8] = []

    /// Step 1: Ya and PadA.
    func opening(padding: Int) -> [UInt8] {
        StreamEncryptionKeyExchange.publicKey(privateKey: privateKey)
            + [UInt8](repeating: 0xA5, count: padding)
    }

    /// Step 3, once the responder's key is known: the sync hash, the torrent, the encrypted header,
    /// padding and initial payload. Returns the bytes and the two RC4 streams (ours, the responder's).
    mutating func third(responderKey: [UInt8], padding: Int, initialPayload: [UInt8]) -> ([UInt8], RC4, RC4) {
        secret = StreamEncryptionKeyExchange.sharedSecret(
            privateKey: privateKey, peerPublicKey: responderKey)!
        let hash = EncryptionHandshakeResponder.hash
        var ours = RC4(key: hash("keyA", secret + infoHash.bytes))
        let theirs = RC4(key: hash("keyB", secret + infoHash.bytes))
        var bytes = hash("req1", secret)
        bytes += zip(hash("req2", infoHash.bytes), hash("req3", secret)).map { $0 ^ $1 }
        var encrypted = verification[...]
        encrypted += [
            UInt8(provide >> 24), UInt8(provide >> 16 & 0xff), UInt8(provide >> 8 & 0xff),
            UInt8(provide & 0xff),
        ]
        encrypted += [UInt8(padding >> 8), UInt8(padding & 0xff)] + [UInt8](repeating: 0x5A, count: padding)
        encrypted += [UInt8(initialPayload.count >> 8), UInt8(initialPayload.count & 0xff)] + initialPayload
        ours.apply(to: &encrypted)
        return (bytes + encrypted, ours, theirs)
    }
}

@Suite struct StreamEncryptionTests {
    let infoHash = InfoHash([UInt8](repeating: 7, count: 20))!
    let other = InfoHash([UInt8](repeating: 9, count: 20))!
    let handshake = Array("\u{13}BitTorrent protocol".utf8) + [UInt8](repeating: 1, count: 48)

    @Test func rc4MatchesItsPublishedVector() {
        // Key "Key", plaintext "Plaintext" → BBF316E8D940AF0AD3 (no bytes discarded).
        var cipher = RC4(key: Array("Key".utf8), discarding: 0)
        var bytes = Array("Plaintext".utf8)[...]
        cipher.apply(to: &bytes)
        #expect(Hex.encode(Array(bytes)) == "bbf316e8d940af0ad3")
    }

    @Test func keyExchangeAgreesAndRefusesDegenerateKeys() {
        let a = [UInt8](repeating: 3, count: 20)
        let b = [UInt8](repeating: 5, count: 20)
        let ya = StreamEncryptionKeyExchange.publicKey(privateKey: a)
        let yb = StreamEncryptionKeyExchange.publicKey(privateKey: b)
        #expect(ya.count == 96 && ya != yb)
        let s1 = StreamEncryptionKeyExchange.sharedSecret(privateKey: a, peerPublicKey: yb)
        let s2 = StreamEncryptionKeyExchange.sharedSecret(privateKey: b, peerPublicKey: ya)
        #expect(s1 != nil && s1 == s2)
        let one = [UInt8](repeating: 0, count: 95) + [1]
        #expect(StreamEncryptionKeyExchange.sharedSecret(privateKey: a, peerPublicKey: one) == nil)
        #expect(
            StreamEncryptionKeyExchange.sharedSecret(
                privateKey: a, peerPublicKey: [UInt8](repeating: 0xff, count: 96)) == nil)
    }

    /// The whole exchange, delivered all at once and one byte at a time: the responder names the torrent,
    /// answers with plaintext chosen, and hands over the initial payload and what followed it.
    @Test(arguments: [false, true])
    func exchangeSelectsPlaintextAndHandsOverTheHandshake(byteAtATime: Bool) throws {
        var responder = EncryptionHandshakeResponder(
            knownInfoHashes: [other, infoHash], privateKey: [UInt8](repeating: 0x42, count: 20),
            padding: [UInt8](repeating: 0, count: 17))
        var initiator = TestInitiator(infoHash: infoHash)
        /// Bytes after the exchange belong to the peer wire: appended to what `.established` carries.
        func feed(_ bytes: [UInt8]) throws -> EncryptionHandshakeResponder.Step {
            guard byteAtATime else { return try responder.receive(bytes) }
            for (index, byte) in bytes.enumerated() {
                if case .established(let hash, let plaintext) = try responder.receive([byte]) {
                    return .established(infoHash: hash, plaintext: plaintext + bytes[(index + 1)...])
                }
            }
            return .needMoreBytes
        }
        #expect(try feed(initiator.opening(padding: 300)) == .needMoreBytes)
        let reply = responder.takeOutbound()
        #expect(reply.count == 96 + 17)
        var (third, _, theirs) = initiator.third(
            responderKey: Array(reply[..<96]), padding: 33, initialPayload: handshake)
        let trailing: [UInt8] = [0, 0, 0, 1, 2]  // an interested message, plain, after the exchange
        third += trailing
        let step = try feed(third)
        #expect(step == .established(infoHash: infoHash, plaintext: handshake + trailing))
        var answer = responder.takeOutbound()[...]
        #expect(answer.count == 14)
        theirs.apply(to: &answer)
        #expect(
            Array(answer) == [0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 1] + [0, 0], "VC, plaintext, no padding")
    }

    @Test func refusals() throws {
        func attempt(
            _ initiator: TestInitiator, known: [InfoHash], openingPadding: Int = 0, paddingC: Int = 0
        ) -> EncryptionHandshakeResponder.Failure? {
            var initiator = initiator
            var responder = EncryptionHandshakeResponder(
                knownInfoHashes: known, privateKey: [UInt8](repeating: 0x42, count: 20), padding: [])
            do {
                _ = try responder.receive(initiator.opening(padding: openingPadding))
                let key = Array(responder.takeOutbound()[..<96])
                _ = try responder.receive(
                    initiator.third(responderKey: key, padding: paddingC, initialPayload: []).0)
                return nil
            } catch {
                return error
            }
        }
        let plain = TestInitiator(infoHash: infoHash)
        #expect(attempt(plain, known: [infoHash]) == nil)
        #expect(attempt(plain, known: [other]) == .unknownTorrent)
        var rc4Only = plain
        rc4Only.provide = 0x02
        #expect(attempt(rc4Only, known: [infoHash]) == .plaintextNotOffered(2))
        var wrongVerification = plain
        wrongVerification.verification[3] = 1
        #expect(attempt(wrongVerification, known: [infoHash]) == .badVerification)
        #expect(attempt(plain, known: [infoHash], openingPadding: 513) == .noSynchronization)
        #expect(attempt(plain, known: [infoHash], paddingC: 600) == .paddingTooLong(600))
    }
}
