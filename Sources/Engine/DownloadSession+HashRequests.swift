import Hashing
import Metainfo
import PeerWire
import TorrentModel

// BEP 52: peers of a v2 torrent may ask for hashes of a file's tree (a peer that joined by a v2-only
// magnet link needs the piece layers). Every request gets an answer: `hashes` or `hash reject`.
extension DownloadSession {
    /// The most pieces a file may have for its tree to be kept in memory to answer from (64 bytes a
    /// piece, once asked); a longer file's requests are refused.
    static let maximumAnsweredLayerLength = 1 << 20

    /// How many of a peer's hash requests are logged; a peer may send thousands a second.
    static let loggedHashRequests = 8

    /// Answers `request` on `link`: hashes from the file's piece layer with their proof, or a refusal
    /// when the torrent is not v2, the root names no file with a layer, the base layer is not the piece
    /// layer (we keep no leaf hashes), or the range is malformed or longer than 512 hashes. A peer whose
    /// answers pile up unread is dropped: requests arrive many to a receive, each answer up to 16 KiB.
    func answerHashRequest(_ request: HashRequest, link: PeerLink, now: UInt64) {
        let limit = link.connection.options.maximumQueuedOutboundBytes
        guard link.connection.outbound.count <= limit else {
            disconnect(
                link, reason: "not reading: more than \(limit) bytes queued for it after its hash requests",
                now: now)
            return
        }
        let hashes = hashesAnswering(request)
        link.connection.outbound += hashes.map(request.encodedAnswer) ?? request.encodedReject()
        link.hashRequestCount += 1
        guard link.hashRequestCount <= Self.loggedHashRequests else { return }
        log(
            "peer \(link.address): hash request for \(request.length) hashes from \(request.index) with "
                + "\(request.proofLayers) proof layers: "
                + (hashes.map { "answered with \($0.count) hashes" } ?? "refused")
                + (link.hashRequestCount == Self.loggedHashRequests
                    ? " (its further requests are not logged)" : ""))
    }

    private func hashesAnswering(_ request: HashRequest) -> [SHA256Digest]? {
        let pieceLength = metainfo.layout.geometry.pieceLength
        let pieceLayer = UInt32((pieceLength / MerkleTree.blockLength).trailingZeroBitCount)
        guard request.baseLayer == pieceLayer, let layers = hashTree(root: request.piecesRoot) else {
            return nil
        }
        return MerkleTree.hashesAnswer(
            layers: layers, index: Int(request.index), length: Int(request.length),
            proofLayers: Int(request.proofLayers))
    }

    /// The tree above the piece layer of the file whose root is `root`, built at its first request.
    private func hashTree(root: SHA256Digest) -> [[SHA256Digest]]? {
        if let tree = hashTrees[root] { return tree }
        guard let index = fileWithPieceLayer(root: root), let layer = metainfo.pieceLayer(ofFile: index),
            layer.count <= Self.maximumAnsweredLayerLength
        else { return nil }
        let tree = MerkleTree.layers(pieceLayer: layer, pieceLength: metainfo.layout.geometry.pieceLength)
        hashTrees[root] = tree
        return tree
    }

    /// The first file whose root is `root` among those longer than a piece (only they have a piece
    /// layer). The index is built at the first request, so that a peer naming roots we do not have
    /// costs a lookup each, not a walk over every file: a torrent may have half a million.
    private func fileWithPieceLayer(root: SHA256Digest) -> Int? {
        if let layerFilesByRoot { return layerFilesByRoot[root] }
        let pieceLength = Int64(metainfo.layout.geometry.pieceLength)
        var byRoot: [SHA256Digest: Int] = [:]
        for (index, file) in metainfo.files.enumerated() where file.length > pieceLength {
            if let fileRoot = file.piecesRoot, byRoot[fileRoot] == nil { byRoot[fileRoot] = index }
        }
        layerFilesByRoot = byRoot
        return byRoot[root]
    }
}
