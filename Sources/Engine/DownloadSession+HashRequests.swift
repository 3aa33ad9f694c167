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

    /// Answers `request` on `link`: hashes from the file's piece layer with their proof, or a refusal
    /// when the torrent is not v2, the root names no file with a layer, the base layer is not the piece
    /// layer (we keep no leaf hashes), or the range is malformed.
    func answerHashRequest(_ request: HashRequest, link: PeerLink) {
        let hashes = hashesAnswering(request)
        link.connection.outbound += hashes.map(request.encodedAnswer) ?? request.encodedReject()
        log(
            "peer \(link.address): hash request for \(request.length) hashes from \(request.index) with "
                + "\(request.proofLayers) proof layers: "
                + (hashes.map { "answered with \($0.count) hashes" } ?? "refused"))
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
        guard let index = metainfo.files.firstIndex(where: { $0.piecesRoot == root }),
            let layer = metainfo.pieceLayer(ofFile: index), layer.count <= Self.maximumAnsweredLayerLength
        else { return nil }
        let tree = MerkleTree.layers(pieceLayer: layer, pieceLength: metainfo.layout.geometry.pieceLength)
        hashTrees[root] = tree
        return tree
    }
}
