// libFuzzer harness for BEP 9 (ut_metadata). Built by run.sh, not by SwiftPM.
import Hashing
import PeerWire
import TorrentModel

/// The first byte picks what the rest is.
///
/// Even: a `ut_metadata` payload from a peer. What decodes must respect the BEP's bounds (piece inside
/// the metadata, a data piece of exactly its length, a size within the maximum) and come back from its
/// own encoding unchanged; a server asked for that piece must answer it with data or a reject.
///
/// Odd: a script that fetches metadata from simulated peers, honest or not, through a
/// `MetadataAssembler`. No batch of requests may exceed the per-peer limit or name a piece outside the
/// attempt; what completes must be the metadata; no honest peer may be flagged.
@_cdecl("LLVMFuzzerTestOneInput")
public func metadataMessageFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    if input.byte() % 2 == 0 {
        checkDecoding(input.rest())
    } else {
        runAssembly(&input)
    }
    return 0
}

/// The info dictionary of the last size a data message claimed (up to 32 MiB): made again only when
/// the size changes, as filling it for each input cost more than the rest of the check.
nonisolated(unsafe) private var lastInfoDictionary: [UInt8] = []

private func checkDecoding(_ payload: [UInt8]) {
    let message: MetadataMessage
    do {
        message = try MetadataMessage(decoding: payload)
    } catch {
        return
    }
    let piece = message.piece
    switch message {
    case .request, .reject:
        precondition((0..<MetadataMessage.maximumPieceCount).contains(piece), "piece out of range")
    case .data(_, let totalSize, let bytes):
        precondition(totalSize > 0 && totalSize <= MetadataMessage.maximumMetadataSize, "size out of range")
        precondition(piece >= 0 && piece < MetadataMessage.pieceCount(metadataSize: totalSize), "piece range")
        precondition(
            bytes.count == MetadataMessage.pieceLength(piece: piece, metadataSize: totalSize), "piece length")
        precondition(payload.suffix(bytes.count).elementsEqual(bytes), "the piece is not the trailing bytes")
        if lastInfoDictionary.count != totalSize {
            lastInfoDictionary = [UInt8](repeating: 7, count: totalSize)
        }
        var server = MetadataServer(infoDictionary: lastInfoDictionary)!
        let answer = server.answer(requestFor: piece, now: .zero)
        precondition(answer.piece == piece, "the server answered another piece")
        if case .data(_, let size, let served) = answer {
            precondition(
                size == totalSize && served.count == bytes.count, "the server's piece has another shape")
        }
    }
    let encoded = message.encoded()
    guard let again = try? MetadataMessage(decoding: encoded) else {
        preconditionFailure("our own encoding is refused")
    }
    precondition(again == message, "decoding our encoding changed the message")
    precondition(again.encoded() == encoded, "encoding is not stable")
}

/// How a simulated peer behaves.
private enum Behaviour {
    case honest
    case corrupts
    case claimsSize(Int)
    /// Sends the fuzzer's bytes as its answer.
    case raw
}

/// The metadata of every size a script can pick is a prefix of this, made once: making it and hashing
/// it again for each input was most of the harness's time.
private let metadataPattern = (0..<(3 * 16384 + 100)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
nonisolated(unsafe) private var hashesBySize: [Int: InfoDictionaryHashes] = [:]

/// Operations, one byte each (with operands after some): 0 add a peer, 1 remove one, 2 ask for requests,
/// 3 answer one, 4 reject one, 5 let time pass, 6 send an unrequested piece.
private func runAssembly(_ input: inout FuzzInput) {
    let size = 1 + Int(input.uint16()) % metadataPattern.count
    let metadata = Array(metadataPattern[..<size])
    let hashes: InfoDictionaryHashes
    if let known = hashesBySize[size] {
        hashes = known
    } else {
        hashes = InfoDictionaryHashes(v1: InfoHash(v1Digest: SHA1.hash(metadata)), v2: SHA256.hash(metadata))!
        hashesBySize[size] = hashes
    }
    var assembler = MetadataAssembler<Int>(hashes: hashes)
    var behaviours: [Int: Behaviour] = [:]
    var outstanding: [MetadataAssembler<Int>.Request] = []
    var now = Instant.zero
    var steps = 0
    while !input.isAtEnd && steps < 512 {
        steps += 1
        let operation = input.byte() % 7
        let selector = Int(input.byte())
        switch operation {
        case 0:
            let peer = selector % 8
            // A peer keeps its first behaviour, so a flag earned as a liar stays deserved.
            let behaviour: Behaviour
            switch input.byte() % 4 {
            case 0: behaviour = behaviours[peer] ?? .corrupts
            case 1: behaviour = behaviours[peer] ?? .claimsSize(1 + Int(input.uint16()))
            case 2: behaviour = behaviours[peer] ?? .raw
            default: behaviour = behaviours[peer] ?? .honest
            }
            behaviours[peer] = behaviour
            if case .claimsSize(let claimed) = behaviour {
                assembler.addPeer(peer, metadataSize: claimed)
            } else {
                assembler.addPeer(peer, metadataSize: size)
            }
        case 1:
            assembler.removePeer(selector % 8)
            outstanding.removeAll { $0.peer == selector % 8 }
        case 2:
            let requests = assembler.nextRequests(now: now)
            var perPeer: [Int: Int] = [:]
            for request in requests {
                perPeer[request.peer, default: 0] += 1
                precondition(behaviours[request.peer] != nil, "a request for a peer never added")
                precondition(request.piece >= 0 && request.piece < 2 * 1024, "a request for no piece")
            }
            precondition(perPeer.values.allSatisfy { $0 <= 2 }, "more than two requests to one peer")
            precondition(Set(requests.map(\.piece)).count == requests.count, "a piece asked twice at once")
            outstanding += requests
        case 3, 4, 6:
            guard !outstanding.isEmpty || operation == 6 else { continue }
            let request =
                operation == 6
                ? MetadataAssembler<Int>.Request(peer: selector % 8, piece: Int(input.byte() % 4))
                : outstanding.remove(at: selector % outstanding.count)
            guard let behaviour = behaviours[request.peer] else { continue }
            let message: MetadataMessage
            if operation == 4 {
                message = .reject(piece: request.piece)
            } else if let answer = answer(request.piece, metadata, behaviour, &input) {
                message = answer
            } else {
                continue
            }
            let outcome = assembler.receive(message, from: request.peer, now: now)
            if case .completed(let bytes, _) = outcome {
                precondition(bytes == metadata, "completed with other bytes")
            }
        default:
            now = now.adding(seconds: UInt64(selector))
        }
        for peer in assembler.peersWithWrongData {
            if case .honest? = behaviours[peer] {
                preconditionFailure("an honest peer was flagged")
            }
        }
    }
    if let bytes = assembler.infoDictionary {
        precondition(bytes == metadata, "the result is not the metadata")
    }
}

/// A peer's answer, or nil when it has nothing valid to send.
private func answer(
    _ piece: Int, _ metadata: [UInt8], _ behaviour: Behaviour, _ input: inout FuzzInput
) -> MetadataMessage? {
    switch behaviour {
    case .honest, .corrupts:
        guard piece < MetadataMessage.pieceCount(metadataSize: metadata.count) else { return nil }
        var bytes = Array(metadata[MetadataMessage.pieceRange(piece: piece, metadataSize: metadata.count)])
        if case .corrupts = behaviour { bytes[0] ^= 1 }
        return .data(piece: piece, totalSize: metadata.count, payload: bytes)
    case .claimsSize(let size):
        guard piece < MetadataMessage.pieceCount(metadataSize: size) else { return nil }
        let length = MetadataMessage.pieceLength(piece: piece, metadataSize: size)
        return .data(piece: piece, totalSize: size, payload: [UInt8](repeating: 0xcc, count: length))
    case .raw:
        return try? MetadataMessage(decoding: input.prefix(Int(input.byte())))
    }
}
