// libFuzzer harness for BEP 52 piece layers: fetching them (a v2-only magnet link) and answering
// requests for them. Built by run.sh, not by SwiftPM.
import Hashing
import Metainfo
import PeerWire
import TorrentModel

/// A file of 2–600 pieces; three peers, one honest (answers from the true tree), one liar (answers with
/// altered hashes) and one that answers with fuzzed bytes, in an order the input decides, with refusals,
/// silence, departures and time passing. Also parses fuzzed bytes as a `hashes` header and answers
/// fuzzed requests from the true tree. Whatever happens: the fetch completes with the true layer or
/// not at all, asks only the peers offered, keeps each run with one peer at a time, and every answer's
/// proof leads up the tree.
@_cdecl("LLVMFuzzerTestOneInput")
public func pieceLayerFetchFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    let pieceLength = 16 * 1024 << Int(input.byte() % 3)
    let pieceCount = 2 + Int(input.uint16() % 599)
    let (layer, tree) = trueTree(pieceLength: pieceLength, pieceCount: pieceCount)
    let root = tree.last![0]

    // Requests for the true tree, as a seeder answers them.
    let request = HashRequest(header: input.bytes(48)[...])
    if let request,
        let answer = MerkleTree.hashesAnswer(
            layers: tree, index: Int(request.index % 2048), length: Int(request.length % 2048),
            proofLayers: Int(request.proofLayers % 16))
    {
        checkProof(answer, tree: tree, index: Int(request.index % 2048), length: Int(request.length % 2048))
    }

    let need = PieceLayerFetch<Int>.Need(
        piecesRoot: root, pieceCount: pieceCount,
        baseLayer: UInt32((pieceLength / 16384).trailingZeroBitCount))
    var fetch = PieceLayerFetch(needs: [need]) { candidate, hashes in
        candidate == root && MerkleTree.root(pieceLayer: hashes, pieceLength: pieceLength) == root
    }
    var now = Instant.zero
    // What each peer was asked and when: a run unanswered past the timeout is the fetch's to ask again.
    var asked: [(HashRequest, Int, Instant)] = []
    while !input.isAtEnd && !fetch.isComplete {
        let op = input.byte()
        switch op % 6 {
        case 0, 1:
            let peers = [0, 1, 2].filter { op & (8 << $0) != 0 }
            asked.removeAll {
                now.nanoseconds(since: $0.2) >= PieceLayerFetch<Int>.timeoutNanoseconds
            }
            let requests = fetch.nextRequests(peers: peers, now: now)
            for (request, peer) in requests {
                precondition(peers.contains(peer), "asked a peer not offered")
                precondition(Int(request.index) % Int(request.length) == 0, "a misaligned run")
                precondition(!asked.contains { $0.0 == request }, "a run asked of two peers at once")
            }
            asked += requests.map { ($0.0, $0.1, now) }
        case 2:
            guard !asked.isEmpty else { continue }
            let (request, peer, _) = asked.remove(at: Int(op >> 3) % asked.count)
            let start = Int(request.index)
            var hashes = (start..<start + Int(request.length)).map { $0 < pieceCount ? layer[$0] : root }
            switch peer {
            case 1: hashes[0] = root  // the liar
            case 2: hashes = (0..<Int(input.byte())).map { _ in SHA256Digest(bytes: input.bytes(32)) ?? root }
            default: break
            }
            _ = fetch.receivedHashes(request, hashes: hashes, from: peer)
        case 3:
            guard !asked.isEmpty else { continue }
            let (request, peer, _) = asked.remove(at: Int(op >> 3) % asked.count)
            fetch.receivedReject(request, from: peer)
        case 4:
            now = now.advanced(byNanoseconds: UInt64(op >> 3) * 1_000_000_000)
        default:
            let peer = Int(op >> 3) % 3
            fetch.removePeer(peer)
            asked.removeAll { $0.1 == peer }
        }
    }
    if fetch.isComplete { precondition(fetch.layers[root] == layer, "completed with another layer") }
    return 0
}

/// The true piece layer and tree of each geometry, made once: building them anew for every input took
/// four fifths of the harness's time (30,000 runs from one corpus and seed: 49–53 s, now 10 s).
nonisolated(unsafe) private var treesByGeometry: [Int: (layer: [SHA256Digest], tree: [[SHA256Digest]])] = [:]

private func trueTree(pieceLength: Int, pieceCount: Int) -> (layer: [SHA256Digest], tree: [[SHA256Digest]]) {
    let key = pieceLength << 16 | pieceCount
    if let made = treesByGeometry[key] { return made }
    let layer = (0..<pieceCount).map { SHA256.hash([UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8), 7]) }
    let tree = MerkleTree.layers(pieceLayer: layer, pieceLength: pieceLength)
    precondition(
        tree.last![0] == MerkleTree.root(pieceLayer: layer, pieceLength: pieceLength), "the tree's root")
    // Bounded: at most 1,797 geometries, each up to about 64 KiB.
    treesByGeometry[key] = (layer, tree)
    return (layer, tree)
}

/// The requester's check: the asked hashes fold to their subtree's root, which the uncles lift to the
/// tree's root when the answer carries proof that far.
private func checkProof(_ answer: [SHA256Digest], tree: [[SHA256Digest]], index: Int, length: Int) {
    let count = min(length, tree[0].count - index)
    precondition(Array(answer.prefix(count)) == Array(tree[0][index..<index + count]), "wrong hashes")
    var level = Array(answer.prefix(count))
    while level.count > 1 {
        level = stride(from: 0, to: level.count, by: 2).map {
            SHA256.hash(level[$0].bytes + level[$0 + 1].bytes)
        }
    }
    var hash = level[0]
    var position = index >> count.trailingZeroBitCount
    var height = count.trailingZeroBitCount
    for uncle in answer.dropFirst(count) {
        hash =
            position & 1 == 0 ? SHA256.hash(hash.bytes + uncle.bytes) : SHA256.hash(uncle.bytes + hash.bytes)
        position >>= 1
        height += 1
    }
    precondition(hash == tree[height][position], "the proof does not lead up the tree")
}
