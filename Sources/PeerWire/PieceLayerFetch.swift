import Hashing
import TorrentModel

/// A BEP 52 `hash request`, and the header of the `hashes` and `hash reject` messages that answer it:
/// `length` hashes of the layer `baseLayer` levels above the 16 KiB leaves of the file whose tree has
/// the root `piecesRoot`, from the `index`th, with `proofLayers` uncle hashes above them.
public struct HashRequest: Hashable, Sendable {
    /// The peer-wire message ids.
    public static let requestID: UInt8 = 21
    public static let hashesID: UInt8 = 22
    public static let rejectID: UInt8 = 23
    /// The payload of all three, after the id: the root and four 32-bit numbers.
    public static let headerByteCount = 48

    public var piecesRoot: SHA256Digest
    public var baseLayer: UInt32
    public var index: UInt32
    public var length: UInt32
    public var proofLayers: UInt32

    public init(
        piecesRoot: SHA256Digest, baseLayer: UInt32, index: UInt32, length: UInt32, proofLayers: UInt32
    ) {
        self.piecesRoot = piecesRoot
        self.baseLayer = baseLayer
        self.index = index
        self.length = length
        self.proofLayers = proofLayers
    }

    /// The whole `hash request` message, length prefix included.
    public func encodedRequest() -> [UInt8] { encoded(id: Self.requestID) }

    /// The `hashes` message answering this request, length prefix included.
    public func encodedAnswer(_ hashes: [SHA256Digest]) -> [UInt8] {
        encoded(id: Self.hashesID, hashes: hashes)
    }

    /// The `hash reject` message refusing this request, length prefix included.
    public func encodedReject() -> [UInt8] { encoded(id: Self.rejectID) }

    private func encoded(id: UInt8, hashes: [SHA256Digest] = []) -> [UInt8] {
        var bytes: [UInt8] = []
        let messageLength = 1 + Self.headerByteCount + hashes.count * SHA256Digest.byteCount
        bytes.reserveCapacity(4 + messageLength)
        bytes.appendBigEndian(UInt32(messageLength))
        bytes.append(id)
        bytes += piecesRoot.bytes
        for value in [baseLayer, index, length, proofLayers] { bytes.appendBigEndian(value) }
        for hash in hashes { bytes += hash.bytes }
        return bytes
    }

    /// The header at the start of a `hashes` or `hash reject` payload (after the id); nil when short.
    public init?(header payload: ArraySlice<UInt8>) {
        guard payload.count >= Self.headerByteCount,
            let root = SHA256Digest(bytes: payload.prefix(SHA256Digest.byteCount))
        else { return nil }
        var numbers: [UInt32] = []
        var offset = payload.startIndex + SHA256Digest.byteCount
        for _ in 0..<4 {
            numbers.append(payload[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) })
            offset += 4
        }
        self.init(
            piecesRoot: root, baseLayer: numbers[0], index: numbers[1], length: numbers[2],
            proofLayers: numbers[3])
    }
}

/// The piece layers of a v2 torrent fetched from peers (BEP 52), for a magnet link whose info
/// dictionary (which holds only each file's root) has arrived: every file longer than a piece needs the
/// hashes of its pieces before any of them can be checked. Pure: the caller sends the requests, hands
/// over `hashes` and `hash reject` answers, and passes time.
///
/// Each file's whole layer is asked for, in runs of at most ``maximumRun`` hashes with no proof hashes,
/// and checked once complete against the file's root (`verify`, which the caller supplies: the Merkle
/// arithmetic lives with the metainfo). When a layer from one peer does not hash to the root, that peer
/// is not asked for the file again; when several peers sent parts of it, which one lied is unknown, so
/// the file is then asked of one peer at a time until a layer checks (each failure excluding its one
/// sender): an honest peer is never excluded for a liar's hashes. A peer that refuses is not asked for
/// the file again; an unanswered run goes to another peer after ``timeoutNanoseconds``.
///
/// Invariants: a run is outstanding with at most one peer; `layers[root]` is set only once verified.
public struct PieceLayerFetch<Peer: Hashable & Sendable>: Sendable {
    /// What one file needs: its root, how many pieces it has, and the layer those are at (log2 of the
    /// piece length over 16 KiB).
    public struct Need: Hashable, Sendable {
        public var piecesRoot: SHA256Digest
        public var pieceCount: Int
        public var baseLayer: UInt32

        public init(piecesRoot: SHA256Digest, pieceCount: Int, baseLayer: UInt32) {
            self.piecesRoot = piecesRoot
            self.pieceCount = pieceCount
            self.baseLayer = baseLayer
        }
    }

    /// What an answer meant.
    public enum Receipt: Hashable, Sendable {
        /// Unasked, a duplicate, or for a run asked of someone else: ignored.
        case ignored
        case stored
        /// The file's layer is complete and verified.
        case fileCompleted(SHA256Digest)
        /// The file's layer, now complete, does not hash to its root: it is asked for again, of other
        /// peers (`liar` alone sent it) or of one peer at a time (several did, and which lied is
        /// unknown: `liar` is nil, and the peer whose answer completed it is not to be blamed).
        case wrongHashes(SHA256Digest, liar: Peer?)
    }

    /// BEP 52 asks that requests stay at or under 512 hashes.
    public static var maximumRun: Int { 512 }
    public static var timeoutNanoseconds: UInt64 { 10_000_000_000 }

    private struct Run: Hashable {
        var root: SHA256Digest
        var index: Int
        var length: Int
    }

    private struct Outstanding {
        var peer: Peer
        var sentAt: Instant
    }

    private let needs: [SHA256Digest: Need]
    private let verify: @Sendable (SHA256Digest, [SHA256Digest]) -> Bool
    private var pending: [Run] = []
    private var outstanding: [Run: Outstanding] = [:]
    private var received: [SHA256Digest: [Int: [SHA256Digest]]] = [:]
    private var senders: [SHA256Digest: Set<Peer>] = [:]
    /// Peers not to ask again for a file: they refused, went silent, or alone sent a layer that did not
    /// verify.
    private var excluded: [SHA256Digest: Set<Peer>] = [:]
    /// Files whose layer failed with several senders: all their runs go to one peer at a time.
    private var singleSource: Set<SHA256Digest> = []
    /// The verified layers, by root.
    public private(set) var layers: [SHA256Digest: [SHA256Digest]] = [:]

    public init(needs: [Need], verify: @escaping @Sendable (SHA256Digest, [SHA256Digest]) -> Bool) {
        var byRoot: [SHA256Digest: Need] = [:]
        for need in needs where need.pieceCount > 0 { byRoot[need.piecesRoot] = need }
        self.needs = byRoot
        self.verify = verify
        // In the order given, so that runs are asked in a stable order.
        var seen: Set<SHA256Digest> = []
        for need in needs where need.pieceCount > 0 && seen.insert(need.piecesRoot).inserted {
            pending += Self.runs(of: need)
        }
    }

    /// Whether every layer has arrived and verified.
    public var isComplete: Bool { layers.count == needs.count }

    /// The requests to make now, each to one of `peers` that may be asked for its file (not excluded,
    /// with the fewest runs outstanding). Unanswered runs past the timeout are asked again of another.
    public mutating func nextRequests(peers: [Peer], now: Instant) -> [(HashRequest, Peer)] {
        for (run, asked) in outstanding where now.nanoseconds(since: asked.sentAt) >= Self.timeoutNanoseconds
        {
            outstanding[run] = nil
            excluded[run.root, default: []].insert(asked.peer)
            pending.append(run)
        }
        var requests: [(HashRequest, Peer)] = []
        var load: [Peer: Int] = [:]
        for asked in outstanding.values { load[asked.peer, default: 0] += 1 }
        var stillPending: [Run] = []
        // A single-source file's runs all go to the peer that has one of them outstanding.
        var source: [SHA256Digest: Peer] = [:]
        for (run, asked) in outstanding where singleSource.contains(run.root) {
            source[run.root] = asked.peer
        }
        for run in pending {
            let allowed = peers.filter { !(excluded[run.root]?.contains($0) ?? false) }
            let chosen: Peer?
            if singleSource.contains(run.root), let current = source[run.root] {
                chosen = allowed.contains(current) ? current : nil
            } else {
                chosen = allowed.min(by: { load[$0, default: 0] < load[$1, default: 0] })
            }
            guard let need = needs[run.root], let peer = chosen else {
                stillPending.append(run)
                continue
            }
            if singleSource.contains(run.root) { source[run.root] = peer }
            load[peer, default: 0] += 1
            outstanding[run] = Outstanding(peer: peer, sentAt: now)
            requests.append(
                (
                    HashRequest(
                        piecesRoot: run.root, baseLayer: need.baseLayer, index: UInt32(run.index),
                        length: UInt32(run.length), proofLayers: 0), peer
                ))
        }
        pending = stillPending
        return requests
    }

    /// A `hashes` message from `peer`: the request it answers and its hashes.
    public mutating func receivedHashes(
        _ request: HashRequest, hashes: [SHA256Digest], from peer: Peer
    ) -> Receipt {
        let run = Run(root: request.piecesRoot, index: Int(request.index), length: Int(request.length))
        guard let need = needs[run.root], outstanding[run]?.peer == peer, request.baseLayer == need.baseLayer,
            request.proofLayers == 0, hashes.count >= min(run.length, need.pieceCount - run.index)
        else { return .ignored }
        outstanding[run] = nil
        received[run.root, default: [:]][run.index] = Array(hashes.prefix(run.length))
        senders[run.root, default: []].insert(peer)
        let runs = Self.runs(of: need)
        guard runs.allSatisfy({ received[run.root]?[$0.index] != nil }) else { return .stored }
        let layer = Array(runs.flatMap { received[run.root]![$0.index]! }.prefix(need.pieceCount))
        received[run.root] = nil
        if verify(run.root, layer) {
            layers[run.root] = layer
            return .fileCompleted(run.root)
        }
        let fileSenders = senders[run.root] ?? []
        senders[run.root] = nil
        let liar = fileSenders.count == 1 ? fileSenders.first : nil
        if let liar {
            excluded[run.root, default: []].insert(liar)
        } else {
            // Which of them lied is unknown: the file is asked of one peer at a time from now on.
            singleSource.insert(run.root)
        }
        pending += runs
        return .wrongHashes(run.root, liar: liar)
    }

    /// A `hash reject` from `peer`: the run goes to another peer.
    public mutating func receivedReject(_ request: HashRequest, from peer: Peer) {
        let run = Run(root: request.piecesRoot, index: Int(request.index), length: Int(request.length))
        guard outstanding[run]?.peer == peer else { return }
        outstanding[run] = nil
        excluded[run.root, default: []].insert(peer)
        pending.append(run)
    }

    /// A peer left: its runs go to others.
    public mutating func removePeer(_ peer: Peer) {
        for (run, asked) in outstanding where asked.peer == peer {
            outstanding[run] = nil
            pending.append(run)
        }
    }

    /// A file's layer in runs: of the layer padded to a power of two (BEP 52: a request's length is a
    /// power of two, its index a multiple of it), at most `maximumRun` each, covering its pieces.
    private static func runs(of need: Need) -> [Run] {
        var padded = 1
        while padded < need.pieceCount { padded <<= 1 }
        let length = max(2, min(maximumRun, padded))
        return stride(from: 0, to: need.pieceCount, by: length).map {
            Run(root: need.piecesRoot, index: $0, length: length)
        }
    }
}
