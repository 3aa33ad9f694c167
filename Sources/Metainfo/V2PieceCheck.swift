import Hashing
import TorrentModel

/// How one piece of a v2 torrent is checked (BEP 52): the root its bytes must hash to, and which of its
/// bytes that root covers.
///
/// A v2 piece belongs to one file, and only the file's own bytes are hashed. When the file ends inside
/// the piece, the rest of the piece in the payload address space is the alignment gap before the next
/// file: no hash covers it, whatever a peer sends for it.
public struct V2PieceCheck: Hashable, Sendable {
    /// The file's piece-layer hash for this piece, or its `pieces root` when the file is at most one
    /// piece long.
    public let expectedRoot: SHA256Digest
    /// The file the piece belongs to, an index into ``Metainfo/files``.
    public let fileIndex: Int
    /// How many bytes of the piece, from its start, are the file's: 1 to `pieceLength`.
    public let dataLength: Int
    /// The leaves of the tree whose root is `expectedRoot`: a power of two, at least the 16 KiB blocks in
    /// `dataLength` (see ``MerkleTree/leafCount(ofPieceIn:pieceLength:)``).
    public let leafCount: Int
}

extension Metainfo {
    /// How to check `piece` of a v2 or hybrid torrent; nil where ``v2PieceHash(_:)`` is nil (a v1
    /// torrent, a piece out of range, or a long file's piece before its piece layer is known).
    public func v2PieceCheck(_ piece: PieceIndex) -> V2PieceCheck? {
        guard let (root, fileIndex) = v2PieceHash(piece) else { return nil }
        let file = files[fileIndex]
        let fileEnd = file.offset + file.length
        let dataLength = Int(min(Int64(pieceLength), fileEnd - geometry.offset(of: piece)))
        return V2PieceCheck(
            expectedRoot: root, fileIndex: fileIndex, dataLength: dataLength,
            leafCount: MerkleTree.leafCount(ofPieceIn: file.length, pieceLength: pieceLength))
    }
}
