import Hashing
import TorrentModel

/// The metadata stage of a magnet link, as a pure state machine: the connections to peers before the
/// torrent's info dictionary (and so its pieces) is known, speaking only what fetching it needs (BEP 3
/// handshake, BEP 10 extension handshake, BEP 9 `ut_metadata`), with a ``MetadataAssembler`` deciding
/// whom to ask for which piece. Bytes, connections and time come in; bytes to send, peers to drop and
/// the verified info dictionary come out. `Peer` names a connection for the caller.
///
/// With `peerExchange`, BEP 11 `ut_pex` is offered too, and the peers a peer names become candidates
/// (at most one message each per ``PexState/minimumReceiveInterval``): a magnet link's first peers are
/// often few. Every other message a peer sends (bitfield, have, choke …) is skipped without being
/// kept: there are no pieces to talk about yet. The connections are dropped once the metadata is
/// known; the download connects again with the full protocol (a few round trips, against a much
/// simpler stage here).
///
/// Invariants: a peer's bytes are parsed only after `connected`; at most `maximumMessageBytes` of any
/// one message and `maximumExtendedPayloadBytes` of an extension message are accepted; a peer is asked
/// for metadata only after its extension handshake named `ut_metadata` and a size.
public struct MetadataFetch<Peer: Hashable & Sendable>: Sendable {
    public enum Action: Hashable, Sendable {
        case send([UInt8], to: Peer)
        /// Close the connection; the reason is for the log.
        case disconnect(Peer, reason: String)
        /// The verified info dictionary (once).
        case completed(infoDictionary: [UInt8])
        /// Peers a peer's `ut_pex` message named, worth trying.
        case peersLearned([PeerAddress], from: Peer)
        /// Every piece layer asked for by ``fetchPieceLayers(_:verify:now:into:)`` arrived and verified
        /// (once), by file root.
        case pieceLayersCompleted([SHA256Digest: [SHA256Digest]])
    }

    /// The number peers put on the `ut_metadata` messages they send us.
    public static var metadataExtensionID: UInt8 { 2 }
    /// The number peers put on the `ut_pex` messages they send us.
    public static var peerExchangeExtensionID: UInt8 { 3 }
    /// The longest message skipped unread (a bitfield of 8 million pieces); longer ones end the link.
    public static var maximumMessageBytes: Int { 1 << 20 }
    /// The longest extension message kept: a metadata piece and its dictionary, or a handshake.
    public static var maximumExtendedPayloadBytes: Int { 64 * 1024 }

    private struct PeerStream: Sendable {
        /// The peer's 68-byte handshake, until it is complete.
        var handshake: [UInt8] = []
        var handshakeDone = false
        /// The 4-byte length and the id of the message being read.
        var header: [UInt8] = []
        /// Bytes of the current message still to come after its header.
        var remaining = 0
        /// The current message's id, and whether its payload is kept (an extension message, or a BEP 52
        /// answer while piece layers are fetched).
        var messageID: UInt8 = 0
        var keeping = false
        var payload: [UInt8] = []
        /// The number the peer wants on our `ut_metadata` messages.
        var metadataID: UInt8?
        /// What the peer told us by `ut_pex`, once it has.
        var peerExchange: PexState?
    }

    public let infoHash: InfoHash
    private let localPeerID: PeerID
    private var assembler: MetadataAssembler<Peer>
    private var streams: [Peer: PeerStream] = [:]
    private let openingBytes: [UInt8]
    private var completedReported = false
    private let peerExchange: Bool
    /// The v2 piece layers being fetched once the info dictionary is known (BEP 52), if asked for.
    private var layerFetch: PieceLayerFetch<Peer>?
    private var layersReported = false

    /// `infoHash` is the one peers know the torrent by (the v1 hash, or a v2 hash truncated).
    public init(
        infoHash: InfoHash, hashes: InfoDictionaryHashes, localPeerID: PeerID, clientName: String,
        options: MetadataAssemblerOptions = MetadataAssemblerOptions(), peerExchange: Bool = false
    ) {
        self.infoHash = infoHash
        self.localPeerID = localPeerID
        self.peerExchange = peerExchange
        assembler = MetadataAssembler(hashes: hashes, options: options)
        var opening: [UInt8] = []
        Handshake(reserved: .extensionProtocol, infoHash: infoHash, peerID: localPeerID).encode(
            into: &opening)
        var offered = ["ut_metadata": Self.metadataExtensionID]
        if peerExchange { offered["ut_pex"] = Self.peerExchangeExtensionID }
        let extensions = ExtensionHandshake(extensions: offered, clientName: clientName).encoded()
        Self.appendExtended(id: 0, payload: extensions, into: &opening)
        openingBytes = opening
    }

    /// The verified info dictionary, once it is.
    public var infoDictionary: [UInt8]? { assembler.infoDictionary }

    /// How much of the metadata has arrived, 0 to 1.
    public var fractionReceived: Double { assembler.fractionReceived }

    /// Peers connected now.
    public var connectedCount: Int { streams.count }

    /// Peers that offered metadata, connected now.
    public var offeringCount: Int { streams.values.reduce(0) { $0 + ($1.metadataID == nil ? 0 : 1) } }

    /// Peers found to have sent wrong metadata (never asked again).
    public var peersWithWrongData: Set<Peer> { assembler.peersWithWrongData }

    /// A connection is open (made by us or accepted): our handshake and extension handshake go first.
    public mutating func connected(_ peer: Peer, into actions: inout [Action]) {
        streams[peer] = PeerStream()
        actions.append(.send(openingBytes, to: peer))
    }

    /// A connection closed: its requests go to other peers.
    public mutating func disconnected(_ peer: Peer, now: Instant, into actions: inout [Action]) {
        guard streams.removeValue(forKey: peer) != nil else { return }
        assembler.removePeer(peer)
        layerFetch?.removePeer(peer)
        askForPieces(now: now, into: &actions)
    }

    /// The info dictionary is a v2 one whose files longer than a piece need their piece layers: asks
    /// the connected peers for them (BEP 52 `hash request`), and reports them in
    /// ``Action/pieceLayersCompleted(_:)`` once every one has hashed to its file's root (`verify`).
    public mutating func fetchPieceLayers(
        _ needs: [PieceLayerFetch<Peer>.Need],
        verify: @escaping @Sendable (SHA256Digest, [SHA256Digest]) -> Bool,
        now: Instant, into actions: inout [Action]
    ) {
        layerFetch = PieceLayerFetch(needs: needs, verify: verify)
        askForPieces(now: now, into: &actions)
    }

    /// Time passed: requests that went unanswered are asked of others.
    public mutating func tick(now: Instant, into actions: inout [Action]) {
        askForPieces(now: now, into: &actions)
    }

    /// Bytes from `peer`, in order.
    public mutating func received(
        _ bytes: UnsafeRawBufferPointer, from peer: Peer, now: Instant, into actions: inout [Action]
    ) {
        guard var stream = streams.removeValue(forKey: peer) else { return }
        var index = 0
        var failure: String?
        // Only a whole message (or a lost peer) can change what to ask: a recv that ends mid-message
        // leaves the requests as they are.
        var heardMessage = false
        while index < bytes.count && failure == nil {
            if !stream.handshakeDone {
                let take = min(Handshake.byteCount - stream.handshake.count, bytes.count - index)
                stream.handshake += bytes[index..<index + take]
                index += take
                if stream.handshake.count == Handshake.byteCount {
                    stream.handshakeDone = true
                    failure = checkHandshake(stream.handshake)
                    stream.handshake = []
                }
            } else if stream.remaining == 0 {
                // A message header: 4 bytes of length, then (unless it is a keep-alive) the id.
                stream.header.append(bytes[index])
                index += 1
                failure = startMessage(&stream)
            } else {
                let take = min(stream.remaining, bytes.count - index)
                if stream.keeping { stream.payload += bytes[index..<index + take] }
                stream.remaining -= take
                index += take
                if stream.remaining == 0 && stream.keeping {
                    stream.keeping = false
                    heardMessage = true
                    let payload = stream.payload
                    stream.payload = []
                    if stream.messageID == 20 {
                        failure = extensionMessage(
                            payload, stream: &stream, from: peer, now: now, into: &actions)
                    } else {
                        failure = hashAnswer(payload, id: stream.messageID, from: peer, into: &actions)
                    }
                }
            }
        }
        if let failure {
            actions.append(.disconnect(peer, reason: failure))
            assembler.removePeer(peer)
        } else {
            streams[peer] = stream
        }
        if heardMessage || failure != nil { askForPieces(now: now, into: &actions) }
    }

    /// Nil when the peer's handshake is for our torrent, else why not.
    private func checkHandshake(_ bytes: [UInt8]) -> String? {
        let handshake: Handshake
        do {
            handshake = try Handshake(parsing: bytes.span)
        } catch {
            return "\(error)"
        }
        if handshake.infoHash != infoHash { return "handshake for another torrent" }
        if handshake.peerID == localPeerID { return "connected to ourselves" }
        if !handshake.reserved.contains(.extensionProtocol) {
            return "no extension protocol (BEP 10): it cannot send metadata"
        }
        return nil
    }

    /// After a header byte: sets up reading the message once its length and id are known.
    private func startMessage(_ stream: inout PeerStream) -> String? {
        guard stream.header.count >= 4 else { return nil }
        let length = stream.header.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        if length == 0 {
            stream.header = []  // keep-alive
            return nil
        }
        guard stream.header.count == 5 else { return nil }
        let id = stream.header[4]
        stream.header = []
        let isExtended = id == 20
        let isHashAnswer = layerFetch != nil && (id == HashRequest.hashesID || id == HashRequest.rejectID)
        let limit =
            isExtended || isHashAnswer ? Self.maximumExtendedPayloadBytes + 1 : Self.maximumMessageBytes
        guard length <= limit else {
            return "a \(length)-byte message (id \(id)) is over the \(limit)-byte limit"
        }
        stream.remaining = length - 1
        stream.messageID = id
        stream.keeping = isExtended || isHashAnswer
        if stream.remaining == 0 && stream.keeping { return "an empty message (id \(id))" }
        return nil
    }

    private mutating func extensionMessage(
        _ payload: [UInt8], stream: inout PeerStream, from peer: Peer, now: Instant,
        into actions: inout [Action]
    ) -> String? {
        let id = payload[0]
        let body = Array(payload.dropFirst())
        if id == 0 {
            let handshake: ExtensionHandshake
            do {
                handshake = try ExtensionHandshake(decoding: body)
            } catch {
                return "extension handshake: \(error)"
            }
            guard let metadataID = handshake.extensions["ut_metadata"], metadataID != 0 else {
                return "does not offer metadata (no ut_metadata)"
            }
            guard let size = handshake.metadataSize else { return "offers no metadata_size" }
            stream.metadataID = metadataID
            assembler.addPeer(peer, metadataSize: size)
            return nil
        }
        if id == Self.peerExchangeExtensionID && peerExchange {
            return peerExchangeMessage(body, stream: &stream, from: peer, now: now, into: &actions)
        }
        guard id == Self.metadataExtensionID else { return nil }  // an extension we did not offer
        let message: MetadataMessage
        do {
            message = try MetadataMessage(decoding: body)
        } catch .unknownMessageType {
            return nil  // BEP 9: for extensions to come
        } catch {
            return "ut_metadata: \(error)"
        }
        if case .request(let piece) = message, let theirs = stream.metadataID {
            // BEP 9: we do not have it yet.
            send(.reject(piece: piece), id: theirs, to: peer, into: &actions)
            return nil
        }
        switch assembler.receive(message, from: peer, now: now) {
        case .ignored, .stored, .rejected:
            return nil
        case .sentWrongData:
            return "sent metadata of another size than it announced"
        case .verificationFailed(_, let liars):
            for liar in liars where liar != peer {
                actions.append(.disconnect(liar, reason: "sent wrong metadata"))
            }
            return liars.contains(peer) ? "sent wrong metadata" : nil
        case .completed(let info, let liars):
            if !completedReported {
                completedReported = true
                actions.append(.completed(infoDictionary: info))
            }
            for liar in liars where liar != peer {
                actions.append(.disconnect(liar, reason: "sent wrong metadata"))
            }
            return liars.contains(peer) ? "sent wrong metadata" : nil
        }
    }

    /// A BEP 52 `hashes` or `hash reject` message while piece layers are fetched.
    private mutating func hashAnswer(
        _ payload: [UInt8], id: UInt8, from peer: Peer, into actions: inout [Action]
    ) -> String? {
        guard var fetch = layerFetch, let request = HashRequest(header: payload[...]) else {
            return "a hash message of \(payload.count) bytes is too short"
        }
        defer { layerFetch = fetch }
        if id == HashRequest.rejectID {
            fetch.receivedReject(request, from: peer)
            return nil
        }
        let hashBytes = payload.dropFirst(HashRequest.headerByteCount)
        guard hashBytes.count % SHA256Digest.byteCount == 0 else {
            return "hashes: \(hashBytes.count) bytes are not whole hashes"
        }
        let hashes = stride(from: hashBytes.startIndex, to: hashBytes.endIndex, by: SHA256Digest.byteCount)
            .compactMap { SHA256Digest(bytes: hashBytes[$0..<$0 + SHA256Digest.byteCount]) }
        switch fetch.receivedHashes(request, hashes: hashes, from: peer) {
        case .ignored, .stored:
            return nil
        case .fileCompleted:
            if fetch.isComplete && !layersReported {
                layersReported = true
                actions.append(.pieceLayersCompleted(fetch.layers))
            }
            return nil
        case .wrongHashes(_, let liar):
            // Only a proven liar goes: with several senders, this one may be the honest one whose
            // answer happened to come last.
            return liar == peer ? "sent piece layer hashes that do not match the file's root" : nil
        }
    }

    /// A `ut_pex` message: its peers are handed on, unless it came too soon after the last.
    private func peerExchangeMessage(
        _ body: [UInt8], stream: inout PeerStream, from peer: Peer, now: Instant, into actions: inout [Action]
    ) -> String? {
        let message: PexMessage
        do {
            message = try PexMessage(decoding: body)
        } catch {
            return "ut_pex: \(error)"
        }
        var state = stream.peerExchange ?? PexState()
        let receipt = state.receive(message, now: now)
        stream.peerExchange = state
        if case .accepted(let candidates, _) = receipt, !candidates.isEmpty {
            actions.append(.peersLearned(candidates.map(\.address), from: peer))
        }
        return nil
    }

    private mutating func askForPieces(now: Instant, into actions: inout [Action]) {
        for request in assembler.nextRequests(now: now) {
            guard let theirs = streams[request.peer]?.metadataID else { continue }
            send(.request(piece: request.piece), id: theirs, to: request.peer, into: &actions)
        }
        guard var fetch = layerFetch, !fetch.isComplete else { return }
        // Peers past their handshakes, in a stable order (a dictionary's is not).
        let ready = streams.filter { $0.value.handshakeDone && $0.value.metadataID != nil }.map(\.key)
        let peers = ready.sorted { $0.hashValue < $1.hashValue }
        for (request, peer) in fetch.nextRequests(peers: peers, now: now) {
            actions.append(.send(request.encodedRequest(), to: peer))
        }
        layerFetch = fetch
    }

    private func send(_ message: MetadataMessage, id: UInt8, to peer: Peer, into actions: inout [Action]) {
        var bytes: [UInt8] = []
        Self.appendExtended(id: id, payload: message.encoded(), into: &bytes)
        actions.append(.send(bytes, to: peer))
    }

    private static func appendExtended(id: UInt8, payload: [UInt8], into bytes: inout [UInt8]) {
        let length = UInt32(payload.count + 2)
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: length >> shift))
        }
        bytes.append(20)
        bytes.append(id)
        bytes += payload
    }
}
