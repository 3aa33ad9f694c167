// libFuzzer harness for a magnet link's metadata stage (BEP 3 handshake, BEP 10, BEP 9) on the wire.
// Built by run.sh, not by SwiftPM.
import Hashing
import PeerWire
import TorrentModel

/// The input is a script run against a `MetadataFetch` by four simulated peers. Its first byte picks the
/// metadata's size; then each operation is a byte (the low three bits the kind, the next two the peer)
/// and, for some kinds, arguments:
///
/// 0 connect · 1 close · 2 time passes (next byte: seconds) · 3 the peer's opening, or later its extension
/// handshake again (next byte: the size it claims, the true one when zero) · 4 the peer answers what it
/// was asked (next byte: odd rejects) · 5 a piece with one byte changed (next bytes: piece, position,
/// value) · 6 raw bytes (next byte: count) · 7 the peer asks us for a piece.
/// Whatever a peer sends is delivered in chunks whose size the next byte picks.
///
/// What must hold throughout: the fetch sends only to open connections and nothing after it asked for
/// one to close; every message it sends frames correctly and names only the peer's own `ut_metadata`
/// number and pieces inside the size that peer claimed, at most `maximumRequestsPerPeer` at once; it
/// answers a peer's request with a reject; it completes at most once, with exactly the metadata; it never
/// drops or flags a peer that has only told the truth. At the end, if an honest peer is connected, the
/// metadata must arrive once it answers everything at once, within a time that grows with how often the
/// script let it refuse (the fetch asks first the peers that refused least, so silent peers must first
/// refuse more often than it did).
@_cdecl("LLVMFuzzerTestOneInput")
public func metadataFetchFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    var script = FetchScript(metadataFixtures[Int(input.byte()) % metadataFixtures.count])
    while !input.isAtEnd { script.step(&input) }
    script.finish()
    return 0
}

/// Sizes with a short last piece, exactly one piece, and one byte over.
private let metadataSizes = [1, 100, 16_384, 16_385, 40_000]
/// The metadata of each size and its infohash, made once: making and hashing up to 40 KB for each
/// input was a fifth of the harness's time.
private let metadataFixtures = metadataSizes.map { size in
    let metadata = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    return (metadata: metadata, hash: InfoHash(v1Digest: SHA1.hash(metadata)))
}
private let peerCount = 4
/// How a peer's bytes are cut on their way to the fetch.
private let chunkSizes = [Int.max, 1, 3, 7, 64, 4096]
/// The number every simulated peer wants on our `ut_metadata` messages.
private let theirMetadataID: UInt8 = 5

private struct SimulatedPeer {
    var isConnected = false
    /// Asked by the fetch to close: it must say nothing more to this connection.
    var isClosing = false
    var hasSentOpening = false
    /// Everything this peer ever sent came from the truth.
    var isHonest = true
    /// The size this peer last claimed.
    var claimedSize: Int?
    /// Sent raw bytes: what the fetch parsed after them (a message they began may swallow later claims,
    /// or they may hold a claim of their own) is unknown, so only the largest size any peer may claim
    /// bounds what it asks this connection for.
    var sentRawBytes = false
    /// Our bytes not parsed yet, and whether our handshake has been read off them.
    var inbound: [UInt8] = []
    var handshakeRead = false
    /// The number the fetch wants on our `ut_metadata` messages (from its extension handshake).
    var ourMetadataID: UInt8?
    /// Pieces the fetch asked this connection for, oldest first.
    var requested: [Int] = []
    var rejectsSeen = 0
}

private struct FetchScript {
    let metadata: [UInt8]
    var fetch: MetadataFetch<Int>
    var peers = Array(repeating: SimulatedPeer(), count: peerCount)
    var now = Instant.zero
    var completed = false
    /// Operations that may have counted against a peer: time passing, rejections.
    var refusalChances = 0
    let maximumRequests = MetadataAssemblerOptions().maximumRequestsPerPeer

    init(_ fixture: (metadata: [UInt8], hash: InfoHash)) {
        metadata = fixture.metadata
        let hash = fixture.hash
        fetch = MetadataFetch(
            infoHash: hash, hashes: InfoDictionaryHashes(v1: hash, v2: nil)!,
            localPeerID: PeerID(Array(repeating: 1, count: 20))!, clientName: "fuzz")
    }

    mutating func step(_ input: inout FuzzInput) {
        let operation = input.byte()
        let peer = Int(operation >> 3) % peerCount
        switch operation & 7 {
        case 0:
            guard !peers[peer].isConnected else { return }
            // The fetch remembers a peer across connections (the engine names each connection anew).
            peers[peer] = SimulatedPeer(isConnected: true, isHonest: peers[peer].isHonest)
            var actions: [MetadataFetch<Int>.Action] = []
            fetch.connected(peer, into: &actions)
            perform(actions)
        case 1:
            guard peers[peer].isConnected else { return }
            close(peer)
        case 2:
            refusalChances += 1
            now = now.adding(seconds: UInt64(input.byte()))
            var actions: [MetadataFetch<Int>.Action] = []
            fetch.tick(now: now, into: &actions)
            perform(actions)
        case 3:
            let claim = Int(input.byte())
            let size = claim == 0 ? metadata.count : claim * 997
            if size != metadata.count && canSpeak(peer) { peers[peer].isHonest = false }
            sendOpening(of: peer, claimingSize: size, &input)
        case 4:
            let rejects = input.byte() % 2 == 1
            if rejects { refusalChances += 1 }
            answerRequests(of: peer, rejecting: rejects, &input)
        case 5:
            let piece = Int(input.byte()) % MetadataMessage.pieceCount(metadataSize: metadata.count)
            var payload = Array(
                metadata[MetadataMessage.pieceRange(piece: piece, metadataSize: metadata.count)])
            let position = Int(input.byte()) % payload.count
            let value = input.byte()
            if payload[position] != value && canSpeak(peer) { peers[peer].isHonest = false }
            payload[position] = value
            let message = MetadataMessage.data(piece: piece, totalSize: metadata.count, payload: payload)
            send(extended(id: MetadataFetch<Int>.metadataExtensionID, message.encoded()), from: peer, &input)
        case 6:
            let bytes = input.prefix(Int(input.byte()))
            if canSpeak(peer) {
                peers[peer].isHonest = false
                if !bytes.isEmpty { peers[peer].sentRawBytes = true }
            }
            send(bytes, from: peer, &input)
        default:
            let piece = Int(input.byte())
            let request = MetadataMessage.request(piece: piece).encoded()
            let before = peers[peer].rejectsSeen
            send(extended(id: MetadataFetch<Int>.metadataExtensionID, request), from: peer, &input)
            if peers[peer].isHonest && peers[peer].hasSentOpening && canSpeak(peer) {
                precondition(peers[peer].rejectsSeen == before + 1, "a request for metadata was not rejected")
            }
        }
    }

    /// Whether `peer` has a connection the fetch has not asked to close.
    private func canSpeak(_ peer: Int) -> Bool { peers[peer].isConnected && !peers[peer].isClosing }

    /// If an honest peer that has said who it is remains, lets it answer until the metadata is complete.
    mutating func finish() {
        guard !completed,
            let honest = peers.indices.first(where: {
                peers[$0].isConnected && !peers[$0].isClosing && peers[$0].isHonest
                    && peers[$0].hasSentOpening
                    && peers[$0].claimedSize != nil
            })
        else { return }
        var silence = FuzzInput([])
        for _ in 0..<(20 + peerCount * refusalChances) where !completed {
            // It answers at once, as often as it is asked; the others say nothing, so time must pass.
            for _ in 0..<16 where !peers[honest].requested.isEmpty {
                answerRequests(of: honest, rejecting: false, &silence)
            }
            now = now.adding(seconds: 61)
            var actions: [MetadataFetch<Int>.Action] = []
            fetch.tick(now: now, into: &actions)
            perform(actions)
        }
        precondition(completed, "an honest peer was connected but the metadata never completed")
    }

    private mutating func sendOpening(of peer: Int, claimingSize size: Int, _ input: inout FuzzInput) {
        guard peers[peer].isConnected else { return }
        var bytes: [UInt8] = []
        let isOpening = !peers[peer].hasSentOpening
        if isOpening {
            Handshake(
                reserved: .extensionProtocol, infoHash: fetch.infoHash,
                peerID: PeerID(Array(repeating: UInt8(10 + peer), count: 20))!
            ).encode(into: &bytes)
            peers[peer].hasSentOpening = true
        }
        var handshake = ExtensionHandshake(clientName: "peer \(peer)")
        handshake.extensions["ut_metadata"] = theirMetadataID
        handshake.metadataSize = size
        bytes += extended(id: 0, handshake.encoded())
        peers[peer].claimedSize = size
        // A claim replaces the requests made under the previous one.
        peers[peer].requested = []
        send(bytes, from: peer, isOpening: isOpening, &input)
    }

    private mutating func answerRequests(of peer: Int, rejecting: Bool, _ input: inout FuzzInput) {
        guard peers[peer].hasSentOpening, let id = peers[peer].ourMetadataID else { return }
        var bytes: [UInt8] = []
        let pieceCount = MetadataMessage.pieceCount(metadataSize: metadata.count)
        for piece in peers[peer].requested {
            // A piece past the true size (asked under a false claim) can only be refused.
            let message: MetadataMessage =
                rejecting || piece >= pieceCount
                ? .reject(piece: piece)
                : .data(
                    piece: piece, totalSize: metadata.count,
                    payload: Array(
                        metadata[MetadataMessage.pieceRange(piece: piece, metadataSize: metadata.count)]))
            bytes += extended(id: id, message.encoded())
        }
        peers[peer].requested = []
        send(bytes, from: peer, &input)
    }

    /// Delivers `bytes` from `peer` in chunks. Anything but the opening said before it is a lie.
    private mutating func send(
        _ bytes: [UInt8], from peer: Int, isOpening: Bool = false, _ input: inout FuzzInput
    ) {
        guard canSpeak(peer), !bytes.isEmpty else { return }
        if !isOpening && !peers[peer].hasSentOpening { peers[peer].isHonest = false }
        let chunk = chunkSizes[Int(input.byte()) % chunkSizes.count]
        var start = 0
        while start < bytes.count && !peers[peer].isClosing {
            // Past the first few messages' framing, the rest at once: byte by byte is slow and no better.
            let end = start < 256 ? min(bytes.count, start + chunk) : bytes.count
            var actions: [MetadataFetch<Int>.Action] = []
            bytes[start..<end].withUnsafeBytes { fetch.received($0, from: peer, now: now, into: &actions) }
            perform(actions)
            start = end
        }
    }

    private mutating func close(_ peer: Int) {
        peers[peer].isConnected = false
        peers[peer].isClosing = false
        var actions: [MetadataFetch<Int>.Action] = []
        fetch.disconnected(peer, now: now, into: &actions)
        perform(actions)
    }

    /// Checks and carries out the fetch's actions as the engine does: a close is followed by
    /// `disconnected`.
    private mutating func perform(_ actions: [MetadataFetch<Int>.Action]) {
        var requestsInBatch = Array(repeating: 0, count: peerCount)
        var closing: [Int] = []
        for action in actions {
            switch action {
            case .send(let bytes, let peer):
                precondition(peers[peer].isConnected && !peers[peer].isClosing, "sent to a closed connection")
                let requests = read(bytes, by: peer)
                requestsInBatch[peer] += requests
                precondition(requestsInBatch[peer] <= maximumRequests, "too many requests at once")
            case .disconnect(let peer, let reason):
                precondition(peers[peer].isConnected && !peers[peer].isClosing, "closed a closed connection")
                precondition(!peers[peer].isHonest, "an honest peer was dropped: \(reason)")
                peers[peer].isClosing = true
                closing.append(peer)
            case .peersLearned:
                preconditionFailure("peers learned by ut_pex, which this fetch does not offer")
            case .pieceLayersCompleted:
                preconditionFailure("piece layers, which this fetch never asks for")
            case .completed(let infoDictionary):
                precondition(!completed, "completed twice")
                precondition(infoDictionary == metadata, "completed with other metadata")
                completed = true
            }
        }
        for peer in peers.indices where peers[peer].isHonest {
            precondition(!fetch.peersWithWrongData.contains(peer), "an honest peer was flagged")
        }
        for peer in closing { close(peer) }
    }

    /// Parses what the fetch sent to `peer`; returns how many requests it holds.
    private mutating func read(_ bytes: [UInt8], by peer: Int) -> Int {
        peers[peer].inbound += bytes
        if !peers[peer].handshakeRead {
            precondition(peers[peer].inbound.count >= Handshake.byteCount, "a short handshake")
            let handshake = try? Handshake(
                parsing: Array(peers[peer].inbound.prefix(Handshake.byteCount)).span)
            precondition(handshake?.infoHash == fetch.infoHash, "a handshake for another torrent")
            peers[peer].inbound.removeFirst(Handshake.byteCount)
            peers[peer].handshakeRead = true
        }
        var requests = 0
        while !peers[peer].inbound.isEmpty {
            let inbound = peers[peer].inbound
            precondition(inbound.count >= 4, "a message cut short")
            let length = inbound.prefix(4).reduce(0) { $0 << 8 | Int($1) }
            precondition(length >= 2 && inbound.count >= 4 + length, "a message cut short")
            precondition(inbound[4] == 20, "a message other than an extension message")
            let payload = Array(inbound[6..<4 + length])
            peers[peer].inbound.removeFirst(4 + length)
            if inbound[5] == 0 {
                let handshake = try? ExtensionHandshake(decoding: payload)
                precondition(handshake != nil, "our extension handshake does not decode")
                peers[peer].ourMetadataID = handshake?.extensions["ut_metadata"]
                continue
            }
            precondition(inbound[5] == theirMetadataID, "a message under a number the peer did not choose")
            switch try? MetadataMessage(decoding: payload) {
            case .request(let piece):
                let size =
                    peers[peer].sentRawBytes
                    ? MetadataMessage.maximumMetadataSize : peers[peer].claimedSize ?? 0
                precondition(piece < MetadataMessage.pieceCount(metadataSize: size), "a piece past the size")
                peers[peer].requested.append(piece)
                requests += 1
            case .reject:
                peers[peer].rejectsSeen += 1
            default:
                preconditionFailure("a metadata message we never send")
            }
        }
        return requests
    }

    private func extended(id: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count + 2
        return [
            UInt8(length >> 24 & 0xff), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff),
            UInt8(length & 0xff),
        ]
            + [20, id] + payload
    }
}
