import Hashing
import Testing
import TorrentModel

@testable import PeerWire

/// A peer on the far side of a metadata fetch, speaking the real wire format: it reads what the fetch
/// sends (handshake, extension messages) and answers `ut_metadata` requests from its own copy of the
/// metadata, which may be wrong.
private struct FarPeer {
    let infoHash: InfoHash
    var metadata: [UInt8]
    var reserved: ReservedBits = .extensionProtocol
    var offersMetadata = true
    /// The number it wants on our `ut_metadata` messages (its choice, BEP 10).
    let theirMetadataID: UInt8 = 3
    /// What it has read of our bytes, not yet parsed.
    var inbound: [UInt8] = []
    var handshakeRead = false
    /// The number we asked it to use on the messages it sends us.
    var ourMetadataID: UInt8?
    var requestsSeen: [Int] = []

    /// Its opening: handshake, then (if it speaks BEP 10) its extension handshake.
    func opening() -> [UInt8] {
        var bytes: [UInt8] = []
        Handshake(reserved: reserved, infoHash: infoHash, peerID: PeerID(Array(repeating: 7, count: 20))!)
            .encode(into: &bytes)
        var handshake = ExtensionHandshake(clientName: "far")
        if offersMetadata {
            handshake.extensions["ut_metadata"] = theirMetadataID
            handshake.metadataSize = metadata.count
        }
        bytes += Self.extended(id: 0, handshake.encoded())
        // A bitfield the fetch must skip.
        bytes += [0, 0, 0, 3, 5, 0xff, 0x80]
        return bytes
    }

    static func extended(id: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count + 2
        return [
            UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff),
        ]
            + [20, id] + payload
    }

    /// Reads what the fetch sent; returns its answers.
    mutating func read(_ bytes: [UInt8]) -> [UInt8] {
        inbound += bytes
        var answers: [UInt8] = []
        if !handshakeRead {
            guard inbound.count >= Handshake.byteCount else { return [] }
            inbound.removeFirst(Handshake.byteCount)
            handshakeRead = true
        }
        while inbound.count >= 4 {
            let length = inbound.prefix(4).reduce(0) { $0 << 8 | Int($1) }
            guard inbound.count >= 4 + length else { break }
            let message = Array(inbound[4..<4 + length])
            inbound.removeFirst(4 + length)
            guard message.first == 20, message.count >= 2 else { continue }
            let payload = Array(message.dropFirst(2))
            if message[1] == 0 {
                ourMetadataID = (try? ExtensionHandshake(decoding: payload))?.extensions["ut_metadata"]
            } else if message[1] == theirMetadataID, let id = ourMetadataID,
                case .request(let piece)? = try? MetadataMessage(decoding: payload)
            {
                requestsSeen.append(piece)
                let range = MetadataMessage.pieceRange(piece: piece, metadataSize: metadata.count)
                let answer = MetadataMessage.data(
                    piece: piece, totalSize: metadata.count, payload: Array(metadata[range]))
                answers += Self.extended(id: id, answer.encoded())
            }
        }
        return answers
    }
}

/// A fetch for `hash` with peer 0 connected (its opening already sent).
private func fetchConnected(_ hash: InfoHash) -> MetadataFetch<Int> {
    var fetch = MetadataFetch<Int>(
        infoHash: hash, hashes: InfoDictionaryHashes(v1: hash, v2: nil)!,
        localPeerID: PeerID(Array(repeating: 1, count: 20))!, clientName: "test")
    var opening: [MetadataFetch<Int>.Action] = []
    fetch.connected(0, into: &opening)
    return fetch
}

private func metadata(size: Int, seed: UInt8) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// Runs a fetch against far peers until nothing more is said; returns the fetch's last actions.
private struct Exchange {
    var fetch: MetadataFetch<Int>
    var peers: [Int: FarPeer]
    var completed: [UInt8]?
    var disconnected: [Int: String] = [:]
    var now = Instant(nanoseconds: 0)

    init(metadata: [UInt8], peers: [FarPeer]) {
        let hash = InfoHash(v1Digest: SHA1.hash(metadata))
        fetch = MetadataFetch(
            infoHash: hash, hashes: InfoDictionaryHashes(v1: hash, v2: nil)!,
            localPeerID: PeerID(Array(repeating: 1, count: 20))!, clientName: "test")
        self.peers = Dictionary(uniqueKeysWithValues: peers.enumerated().map { ($0.offset, $0.element) })
    }

    /// Connects every peer, delivering their bytes `chunk` at a time, until all is said.
    mutating func run(chunk: Int = .max) {
        var actions: [MetadataFetch<Int>.Action] = []
        var pending: [(Int, [UInt8])] = []
        for (key, peer) in peers.sorted(by: { $0.key < $1.key }) {
            fetch.connected(key, into: &actions)
            pending.append((key, peer.opening()))
        }
        var rounds = 0
        while rounds < 1000 {
            rounds += 1
            for action in actions {
                switch action {
                case .send(let bytes, let key):
                    guard disconnected[key] == nil, var peer = peers[key] else { continue }
                    let answer = peer.read(bytes)
                    peers[key] = peer
                    if !answer.isEmpty { pending.append((key, answer)) }
                case .disconnect(let key, let reason):
                    disconnected[key] = reason
                    fetch.disconnected(key, now: now, into: &actions)
                case .completed(let info):
                    #expect(completed == nil, "completed twice")
                    completed = info
                case .peersLearned, .pieceLayersCompleted:
                    break
                }
            }
            actions.removeAll()
            guard !pending.isEmpty else { break }
            let (key, bytes) = pending.removeFirst()
            guard disconnected[key] == nil else { continue }
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + chunk)
                bytes[start..<end].withUnsafeBytes { fetch.received($0, from: key, now: now, into: &actions) }
                start = end
            }
        }
    }
}

@Suite struct MetadataFetchTests {
    @Test(arguments: [1, 7, 1000, Int.max])
    func fetchesAndVerifiesTheInfoDictionaryWhateverTheChunking(chunk: Int) {
        let info = metadata(size: 40_000, seed: 1)
        var exchange = Exchange(
            metadata: info, peers: [FarPeer(infoHash: InfoHash(v1Digest: SHA1.hash(info)), metadata: info)])
        exchange.run(chunk: chunk)
        #expect(exchange.completed == info)
        #expect(exchange.fetch.infoDictionary == info)
        #expect(exchange.peers[0]!.requestsSeen.sorted() == [0, 1, 2])
        #expect(exchange.disconnected.isEmpty)
    }

    @Test func aLiarIsDroppedAndTheHonestPeerSuppliesTheMetadata() {
        let info = metadata(size: 50_000, seed: 2)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var wrong = info
        wrong[20_000] ^= 0xff
        var exchange = Exchange(
            metadata: info,
            peers: [FarPeer(infoHash: hash, metadata: wrong), FarPeer(infoHash: hash, metadata: info)])
        exchange.run()
        #expect(exchange.completed == info)
        #expect(exchange.fetch.peersWithWrongData == [0])
        #expect(exchange.disconnected[0] == "sent wrong metadata")
    }

    @Test func peersThatCannotHelpAreDroppedWithTheReason() {
        let info = metadata(size: 1000, seed: 3)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var noExtensions = FarPeer(infoHash: hash, metadata: info)
        noExtensions.reserved = []
        var noMetadata = FarPeer(infoHash: hash, metadata: info)
        noMetadata.offersMetadata = false
        let otherTorrent = FarPeer(infoHash: InfoHash(Array(repeating: 9, count: 20))!, metadata: info)
        var exchange = Exchange(metadata: info, peers: [noExtensions, noMetadata, otherTorrent])
        exchange.run()
        #expect(exchange.completed == nil)
        #expect(exchange.disconnected[0] == "no extension protocol (BEP 10): it cannot send metadata")
        #expect(exchange.disconnected[1] == "does not offer metadata (no ut_metadata)")
        #expect(exchange.disconnected[2] == "handshake for another torrent")
    }

    @Test func anOversizedMessageEndsTheConnectionWithoutBeingBuffered() {
        let info = metadata(size: 1000, seed: 4)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var fetch = fetchConnected(hash)
        var actions: [MetadataFetch<Int>.Action] = []
        var bytes = FarPeer(infoHash: hash, metadata: info).opening()
        // A 4 GiB message header.
        bytes += [0xff, 0xff, 0xff, 0xff, 20]
        bytes.withUnsafeBytes { fetch.received($0, from: 0, now: Instant(nanoseconds: 0), into: &actions) }
        #expect(
            actions.contains {
                if case .disconnect(0, let reason) = $0 { return reason.contains("over the") }
                return false
            })
        #expect(fetch.connectedCount == 0)
    }

    /// A fetch with `ut_pex` on and peer 0 connected; its opening's extension handshake.
    private func fetchWithPeerExchange(_ hash: InfoHash) -> (MetadataFetch<Int>, ExtensionHandshake?) {
        var fetch = MetadataFetch<Int>(
            infoHash: hash, hashes: InfoDictionaryHashes(v1: hash, v2: nil)!,
            localPeerID: PeerID(Array(repeating: 1, count: 20))!, clientName: "test", peerExchange: true)
        var opening: [MetadataFetch<Int>.Action] = []
        fetch.connected(0, into: &opening)
        guard case .send(let bytes, _)? = opening.first else { return (fetch, nil) }
        // The handshake, then the extension message's length, id 20 and extension id 0.
        let handshake = try? ExtensionHandshake(decoding: Array(bytes.dropFirst(Handshake.byteCount + 6)))
        return (fetch, handshake)
    }

    static let learned = [
        PeerAddress(host: .ipv4(0x0A01_0203), port: 6881), PeerAddress(host: .ipv4(0x0A01_0204), port: 6882),
    ]

    static func pex(_ addresses: [PeerAddress]) -> [UInt8] {
        FarPeer.extended(
            id: MetadataFetch<Int>.peerExchangeExtensionID,
            PexMessage(added: addresses.map { PexPeer(address: $0, flags: [.seed]) }, dropped: []).encoded())
    }

    @Test func peersNamedByUtPexAreHandedOnAtTheBEPsPace() throws {
        let info = metadata(size: 1000, seed: 5)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var (fetch, offered) = fetchWithPeerExchange(hash)
        #expect(offered?.extensions["ut_pex"] == MetadataFetch<Int>.peerExchangeExtensionID)
        var actions: [MetadataFetch<Int>.Action] = []
        let bytes = FarPeer(infoHash: hash, metadata: info).opening() + Self.pex(Self.learned)
        bytes.withUnsafeBytes { fetch.received($0, from: 0, now: .seconds(1), into: &actions) }
        #expect(actions.contains(.peersLearned(Self.learned, from: 0)), "\(actions)")
        // BEP 11: one message a minute; one 10 s later is ignored, one 40 s later taken.
        let later = [PeerAddress(host: .ipv4(0x0A01_0205), port: 6883)]
        actions = []
        Self.pex(later).withUnsafeBytes { fetch.received($0, from: 0, now: .seconds(11), into: &actions) }
        #expect(!actions.contains { if case .peersLearned = $0 { true } else { false } })
        Self.pex(later).withUnsafeBytes { fetch.received($0, from: 0, now: .seconds(41), into: &actions) }
        #expect(actions.contains(.peersLearned(later, from: 0)), "\(actions)")
        #expect(fetch.connectedCount == 1)
    }

    @Test func aMalformedUtPexEndsTheConnection() {
        let info = metadata(size: 1000, seed: 5)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var (fetch, _) = fetchWithPeerExchange(hash)
        var actions: [MetadataFetch<Int>.Action] = []
        let garbage = FarPeer.extended(
            id: MetadataFetch<Int>.peerExchangeExtensionID, Array("d5:added3:abce".utf8))
        let bytes = FarPeer(infoHash: hash, metadata: info).opening() + garbage
        bytes.withUnsafeBytes { fetch.received($0, from: 0, now: .seconds(1), into: &actions) }
        #expect(
            actions.contains {
                if case .disconnect(0, let reason) = $0 { reason.hasPrefix("ut_pex") } else { false }
            }, "\(actions)")
    }

    @Test func withoutPeerExchangeUtPexIsNeitherOfferedNorRead() {
        let info = metadata(size: 1000, seed: 5)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var fetch = fetchConnected(hash)
        var actions: [MetadataFetch<Int>.Action] = []
        let bytes = FarPeer(infoHash: hash, metadata: info).opening() + Self.pex(Self.learned)
        bytes.withUnsafeBytes { fetch.received($0, from: 0, now: .seconds(1), into: &actions) }
        #expect(!actions.contains { if case .peersLearned = $0 { true } else { false } })
        #expect(fetch.connectedCount == 1)
    }

    @Test func aRequestFromThePeerIsRejectedWhileWeHaveNoMetadata() {
        let info = metadata(size: 1000, seed: 5)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var fetch = fetchConnected(hash)
        var actions: [MetadataFetch<Int>.Action] = []
        let peer = FarPeer(infoHash: hash, metadata: info)
        var bytes = peer.opening()
        bytes += FarPeer.extended(
            id: MetadataFetch<Int>.metadataExtensionID, MetadataMessage.request(piece: 0).encoded())
        bytes.withUnsafeBytes { fetch.received($0, from: 0, now: Instant(nanoseconds: 0), into: &actions) }
        let reject = FarPeer.extended(id: peer.theirMetadataID, MetadataMessage.reject(piece: 0).encoded())
        #expect(actions.contains(.send(reject, to: 0)))
    }

    /// Found by the metadata stage's fuzzer (its own bookkeeping took a claim that the fetch could not
    /// have read): an extension handshake that arrives inside a message still being received is part of
    /// that message, so the size it claims changes nothing.
    @Test func aClaimInsideAnUnfinishedMessageIsNotTaken() {
        let info = metadata(size: 40_000, seed: 9)
        let hash = InfoHash(v1Digest: SHA1.hash(info))
        var fetch = MetadataFetch<Int>(
            infoHash: hash, hashes: InfoDictionaryHashes(v1: hash, v2: nil)!,
            localPeerID: PeerID(Array(repeating: 1, count: 20))!, clientName: "test")
        var peer = FarPeer(infoHash: hash, metadata: info)
        var actions: [MetadataFetch<Int>.Action] = []
        fetch.connected(0, into: &actions)
        peer.opening().withUnsafeBytes {
            fetch.received($0, from: 0, now: Instant(nanoseconds: 0), into: &actions)
        }
        var answers: [UInt8] = []
        for case .send(let bytes, 0) in actions { answers += peer.read(bytes) }
        #expect(peer.requestsSeen.contains { $0 > 0 }, "asked for more than the first of three pieces")

        // The first bytes of a 5,600-byte message that swallows a claim of one piece, the rest of it,
        // then the answers to the requests made under the first claim, which must complete the metadata.
        var smaller = ExtensionHandshake(clientName: "far")
        smaller.extensions["ut_metadata"] = peer.theirMetadataID
        smaller.metadataSize = 1_994
        let swallowed = FarPeer.extended(id: 0, smaller.encoded())
        let rest = [UInt8](repeating: 0, count: 0x15e0 - 2 - swallowed.count)
        var delivery = [0, 0, 0x15, 0xe0, 20, 0x41] + swallowed + rest + answers
        var completed = false
        while !delivery.isEmpty {
            actions.removeAll()
            delivery.withUnsafeBytes {
                fetch.received($0, from: 0, now: Instant(nanoseconds: 0), into: &actions)
            }
            delivery = []
            for action in actions {
                switch action {
                case .send(let bytes, 0): delivery += peer.read(bytes)
                case .completed(let infoDictionary): completed = infoDictionary == info
                case .disconnect(_, let reason): Issue.record("the peer was dropped: \(reason)")
                default: break
                }
            }
        }
        #expect(completed)
    }
}
