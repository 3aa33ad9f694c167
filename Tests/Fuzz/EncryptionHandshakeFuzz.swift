// libFuzzer harness for the MSE/PE responder (BEP 8's encryption handshake). Built by run.sh, not by
// SwiftPM.
import Hashing
import PeerWire
import TorrentModel

/// Two modes, picked by the first bit.
///
/// Raw: the rest of the input, cut into chunks it chooses, is what an initiator sends. The responder may
/// refuse it; it must not trap, and it answers with its key and padding exactly once.
///
/// Scripted: random bytes never get past the synchronisation hash, so the harness plays a correct
/// initiator whose choices come from the input: its public key (or a degenerate one), both paddings
/// (sometimes over the limit), the torrent (known or not), the verification bytes (intact or damaged),
/// the methods it offers, the initial payload, the plain bytes after it, and the chunking. The outcome is
/// then known in advance and must be exactly it: the refusal the specification calls for, or the
/// torrent and every plain byte, with an answer that decrypts to "plaintext chosen". Whatever follows
/// in the input then damages bytes of that exchange: the responder may refuse it but must not trap, and
/// may only name a torrent it serves.
@_cdecl("LLVMFuzzerTestOneInput")
public func encryptionHandshakeFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    let mode = input.byte()
    let responderPadding = [UInt8](repeating: 0x77, count: Int(input.byte()) * 2)
    let known = mode & 2 == 0 ? [torrentA, torrentB] : []
    let chunkSizes = (0..<(1 + Int(input.byte() % 8))).map { _ in
        let byte = Int(input.byte())
        return 1 + byte * byte / 32
    }
    var responder = EncryptionHandshakeResponder(
        knownInfoHashes: known, privateKey: responderPrivateKey, padding: responderPadding)
    if mode & 1 != 0 {
        let result = run(&responder, [input.rest()], chunkSizes: chunkSizes)
        if case .established(let infoHash, _) = result.outcome {
            precondition(known.contains(infoHash), "established for a torrent we do not serve")
        }
        precondition(
            result.replies.isEmpty || result.replies[0].count == 96 + responderPadding.count,
            "the first reply is not a key and our padding")
        return 0
    }

    var initiator = Initiator(&input, known: known)
    let result = run(&responder, initiator.parts, chunkSizes: chunkSizes)
    precondition(
        result.outcome == initiator.expected, "outcome \(result.outcome), expected \(initiator.expected)")
    if initiator.keyIsValid {
        precondition(
            result.replies.first == responderPublicKey + responderPadding, "the first reply is not our key")
    }
    if case .established = result.outcome {
        precondition(result.replies.count == 2, "no answer to the exchange")
        precondition(
            initiator.decryptAnswer(result.replies[1]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
            "the answer is not VC, plaintext selected, no padding")
    } else {
        precondition(result.replies.count <= 1, "answered an exchange that failed")
    }

    var damaged = initiator.parts[0] + initiator.parts[1]
    while let edit = input.edit(count: damaged.count) {
        damaged[edit.position] = edit.value
    }
    guard damaged != initiator.parts[0] + initiator.parts[1] else { return 0 }
    var second = EncryptionHandshakeResponder(
        knownInfoHashes: known, privateKey: responderPrivateKey, padding: responderPadding)
    let cut = initiator.parts[0].count
    let again = run(&second, [Array(damaged[..<cut]), Array(damaged[cut...])], chunkSizes: chunkSizes)
    if case .established(let infoHash, _) = again.outcome {
        precondition(known.contains(infoHash), "established for a torrent we do not serve")
    }
    return 0
}

private let torrentA = InfoHash([UInt8](repeating: 0xa1, count: 20))!
private let torrentB = InfoHash([UInt8](repeating: 0xb2, count: 20))!
private let unknownTorrent = InfoHash([UInt8](repeating: 0xc3, count: 20))!
private let responderPrivateKey = [UInt8](repeating: 0x42, count: 20)
private let initiatorPrivateKey = (0..<20).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
private let responderPublicKey = StreamEncryptionKeyExchange.publicKey(privateKey: responderPrivateKey)
private let initiatorPublicKey = StreamEncryptionKeyExchange.publicKey(privateKey: initiatorPrivateKey)
/// The secret as the initiator computes it from the responder's key; the responder computes its own.
private let sharedSecret = StreamEncryptionKeyExchange.sharedSecret(
    privateKey: initiatorPrivateKey, peerPublicKey: responderPublicKey)!
/// The initiator's two RC4 streams for each torrent, keyed once: most of an exchange's time otherwise
/// goes to discarding their first kilobyte.
private let keyedStreams = Dictionary(
    uniqueKeysWithValues: [torrentA, torrentB, unknownTorrent].map { infoHash in
        let keys = sharedSecret + infoHash.bytes
        return (
            infoHash,
            (outgoing: ReferenceRC4(key: hash("keyA", keys)), answer: ReferenceRC4(key: hash("keyB", keys)))
        )
    })
/// The MSE prime, for the degenerate keys P-1 and P.
private let prime = Hex.decode(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563"
)!

private enum Outcome: Equatable, CustomStringConvertible {
    case needMoreBytes
    case established(InfoHash, plaintext: [UInt8])
    case refused(EncryptionHandshakeResponder.Failure)

    var description: String {
        switch self {
        case .needMoreBytes: "needMoreBytes"
        case .established(let infoHash, let plaintext): "established(\(infoHash), \(plaintext.count) bytes)"
        case .refused(let failure): "refused(\(failure))"
        }
    }
}

/// Feeds each part in chunks of the given sizes (repeated), collecting the responder's replies after
/// each part, as a peer that waits for the answer before it goes on would. Bytes after the exchange are
/// the plain peer wire: appended to what `.established` hands over.
private func run(
    _ responder: inout EncryptionHandshakeResponder, _ parts: [[UInt8]], chunkSizes: [Int]
) -> (outcome: Outcome, replies: [[UInt8]]) {
    var replies: [[UInt8]] = []
    var sizes = chunkSizes
    for (partIndex, part) in parts.enumerated() {
        var start = 0
        while start < part.count {
            let size = sizes.removeFirst()
            sizes.append(size)
            let end = min(part.count, start + size)
            let step: EncryptionHandshakeResponder.Step
            do {
                step = try responder.receive(part[start..<end])
            } catch {
                precondition(!error.description.isEmpty, "a failure without a description")
                let reply = responder.takeOutbound()
                if !reply.isEmpty { replies.append(reply) }
                return (.refused(error), replies)
            }
            start = end
            if case .established(let infoHash, let plaintext) = step {
                replies.append(responder.takeOutbound())
                let rest = part[start...] + parts[(partIndex + 1)...].joined()
                return (.established(infoHash, plaintext: plaintext + rest), replies)
            }
        }
        let reply = responder.takeOutbound()
        if !reply.isEmpty { replies.append(reply) }
    }
    return (.needMoreBytes, replies)
}

/// A correct initiator (as the specification describes it) with fuzzed choices, and the outcome they
/// call for.
private struct Initiator {
    /// The opening (key and padding), then the rest of the exchange and the plain bytes after it.
    var parts: [[UInt8]] = []
    var expected = Outcome.needMoreBytes
    var keyIsValid = true
    private var answerStream: ReferenceRC4?

    init(_ input: inout FuzzInput, known: [InfoHash]) {
        let keyChoice = input.byte() % 8
        let degenerate = [
            [UInt8](repeating: 0, count: 96), [UInt8](repeating: 0, count: 95) + [1],
            Array(prime.dropLast()) + [prime[95] - 1], prime, [UInt8](repeating: 0xff, count: 96),
        ]
        let key = keyChoice < 3 ? initiatorPublicKey : degenerate[Int(keyChoice) - 3]
        keyIsValid = keyChoice < 3
        let paddingA = Int(input.uint16() % 700)
        parts.append(key + [UInt8](repeating: input.byte(), count: paddingA))

        let choice = input.byte()
        let infoHash = [torrentB, torrentA, unknownTorrent][Int(choice % 3)]
        var verification = [UInt8](repeating: 0, count: 8)
        if choice & 0x80 != 0 { verification[Int(choice >> 3 & 7)] = choice | 1 }
        let provided = UInt32(input.byte()) | (choice & 0x40 != 0 ? 0xffff_ff00 : 0)
        let paddingC = Int(input.uint16() % 700)
        let initialPayload = input.prefix(Int(input.uint16() % 1100))
        let trailing = input.prefix(Int(input.byte()))

        let secret = sharedSecret
        let skey = infoHash.bytes
        guard let streams = keyedStreams[infoHash] else { preconditionFailure("a torrent without streams") }
        var outgoing = streams.outgoing
        answerStream = streams.answer
        var third = hash("req1", secret) + zip(hash("req2", skey), hash("req3", secret)).map { $0 ^ $1 }
        var encrypted = verification + bigEndian(provided)
        encrypted += bigEndian(UInt16(paddingC)) + [UInt8](repeating: 0x5a, count: paddingC)
        encrypted += bigEndian(UInt16(initialPayload.count)) + initialPayload
        outgoing.apply(&encrypted)
        third += encrypted
        parts.append(third + trailing)

        // The specification's order of checks: key, synchronisation, torrent, verification, padding
        // length, methods.
        if !keyIsValid {
            expected = .refused(.invalidPublicKey)
        } else if paddingA > 512 {
            expected = .refused(.noSynchronization)
        } else if !known.contains(infoHash) {
            expected = .refused(.unknownTorrent)
        } else if verification != [UInt8](repeating: 0, count: 8) {
            expected = .refused(.badVerification)
        } else if paddingC > 512 {
            expected = .refused(.paddingTooLong(paddingC))
        } else if provided & 1 == 0 {
            expected = .refused(.plaintextNotOffered(provided))
        } else {
            expected = .established(infoHash, plaintext: initialPayload + trailing)
        }
    }

    mutating func decryptAnswer(_ answer: [UInt8]) -> [UInt8] {
        var bytes = answer
        answerStream?.apply(&bytes)
        return bytes
    }
}

private func hash(_ label: String, _ bytes: [UInt8]) -> [UInt8] {
    SHA1.hash(Array(label.utf8) + bytes).bytes
}

private func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
}

private func bigEndian(_ value: UInt16) -> [UInt8] {
    [UInt8(value >> 8), UInt8(value & 0xff)]
}

/// RC4 with the first 1024 bytes of keystream dropped, written out here apart from the responder's so
/// that the check does not trust the code it checks.
private struct ReferenceRC4 {
    private var state = [UInt8](0...255)
    private var i: UInt8 = 0
    private var j: UInt8 = 0

    init(key: [UInt8]) {
        var j: UInt8 = 0
        for i in 0..<256 {
            j = j &+ state[i] &+ key[i % key.count]
            state.swapAt(i, Int(j))
        }
        var discarded = [UInt8](repeating: 0, count: 1024)
        apply(&discarded)
    }

    mutating func apply(_ bytes: inout [UInt8]) {
        for index in bytes.indices {
            i = i &+ 1
            j = j &+ state[Int(i)]
            state.swapAt(Int(i), Int(j))
            bytes[index] ^= state[Int(state[Int(i)] &+ state[Int(j)])]
        }
    }
}
