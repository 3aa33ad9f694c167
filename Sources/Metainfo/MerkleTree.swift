import Hashing

/// BEP 52 merkle trees: SHA-256, branching factor 2, 16 KiB leaf blocks.
///
/// A file's tree has one leaf per 16 KiB block (the last may be short); leaves past the end of the file,
/// needed only to make the leaf count a power of two, are 32 zero bytes (not the hash of a zero block).
/// A piece layer is the layer where one hash covers `piece length` bytes; the hashes past the end of
/// the file are omitted from `piece layers`, and to rebuild the root they are replaced by the root of a
/// subtree of zero leaves — ``paddingHash(leafCount:)`` — not by zero bytes.
public enum MerkleTree {
    /// The leaf block size BEP 52 fixes.
    public static let blockLength = 16 * 1024

    /// The value of a padding leaf: 32 zero bytes.
    public static let zeroLeaf: SHA256Digest = {
        guard let zero = SHA256Digest(bytes: [UInt8](repeating: 0, count: SHA256Digest.byteCount)) else {
            preconditionFailure("a 32-byte array is a SHA-256 digest")
        }
        return zero
    }()

    /// The hash of an inner node.
    static func parent(_ left: SHA256Digest, _ right: SHA256Digest, hasher: StreamingHasher) -> SHA256Digest {
        left.withUnsafeBytes { hasher.update($0) }
        right.withUnsafeBytes { hasher.update($0) }
        return hasher.finishSHA256()
    }

    /// The root of a subtree of `leafCount` padding leaves (`leafCount` a power of two): what stands in
    /// for an omitted hash `log2(leafCount)` layers above the leaves.
    public static func paddingHash(leafCount: Int) -> SHA256Digest {
        precondition(leafCount > 0 && leafCount & (leafCount - 1) == 0, "leaf count must be a power of two")
        let hasher = StreamingHasher(.sha256)
        var hash = zeroLeaf
        var width = 1
        while width < leafCount {
            hash = parent(hash, hash, hasher: hasher)
            width *= 2
        }
        return hash
    }

    /// The root over `hashes` padded with `padding` to `width` entries (a power of two, at least
    /// `hashes.count`; by default the smallest such). The padding hash doubles up each layer.
    public static func root(
        of hashes: [SHA256Digest], width: Int? = nil, padding: SHA256Digest
    ) -> SHA256Digest {
        var layer = hashes
        var width = width ?? nextPowerOfTwo(max(hashes.count, 1))
        precondition(
            width >= hashes.count && width & (width - 1) == 0, "width must be a power of two ≥ count")
        guard !layer.isEmpty else {
            // A tree of padding only.
            var hash = padding
            let hasher = StreamingHasher(.sha256)
            while width > 1 {
                hash = parent(hash, hash, hasher: hasher)
                width /= 2
            }
            return hash
        }
        let hasher = StreamingHasher(.sha256)
        var pad = padding
        while width > 1 {
            let pairCount = (layer.count + 1) / 2
            for pair in 0..<pairCount {
                let left = layer[2 * pair]
                let right = 2 * pair + 1 < layer.count ? layer[2 * pair + 1] : pad
                layer[pair] = parent(left, right, hasher: hasher)
            }
            layer.removeLast(layer.count - pairCount)
            pad = parent(pad, pad, hasher: hasher)
            width /= 2
        }
        return layer[0]
    }

    /// The leaf hashes of a file's content: SHA-256 of each 16 KiB block, the last one possibly short.
    /// Convenient for small inputs; a creator streaming a large file hashes each block with `SHA256.hash`
    /// itself.
    public static func blockHashes(of content: [UInt8]) -> [SHA256Digest] {
        stride(from: 0, to: content.count, by: blockLength).map { start in
            SHA256.hash(content[start..<min(start + blockLength, content.count)])
        }
    }

    /// A file's `pieces root` from its block hashes, or nil for an empty file (which has none).
    public static func fileRoot(blockHashes: [SHA256Digest]) -> SHA256Digest? {
        guard !blockHashes.isEmpty else { return nil }
        return root(of: blockHashes, padding: zeroLeaf)
    }

    /// The number of leaves under one piece-layer hash.
    static func blocksPerPiece(_ pieceLength: Int) -> Int {
        precondition(
            pieceLength >= blockLength && pieceLength & (pieceLength - 1) == 0, "invalid piece length")
        return pieceLength / blockLength
    }

    /// The leaves of the tree whose root checks one piece of a file of `fileLength` bytes (BEP 52). A
    /// piece-layer hash has `pieceLength / 16 KiB` leaves, whatever part of them the file fills; a file of
    /// at most one piece has no piece-layer entry and is checked against its `pieces root`, whose leaves
    /// are its blocks rounded up to a power of two. For a file of exactly one piece the two agree.
    public static func leafCount(ofPieceIn fileLength: Int64, pieceLength: Int) -> Int {
        let perPiece = blocksPerPiece(pieceLength)
        guard fileLength <= Int64(pieceLength) else { return perPiece }
        let blocks = Int((fileLength + Int64(blockLength) - 1) / Int64(blockLength))
        return nextPowerOfTwo(max(blocks, 1))
    }

    /// The piece layer of a file from its block hashes: one hash per `pieceLength` bytes, the last one's
    /// subtree completed with zero leaves. `piece layers` carries this for files larger than one piece.
    public static func pieceLayer(blockHashes: [SHA256Digest], pieceLength: Int) -> [SHA256Digest] {
        let perPiece = blocksPerPiece(pieceLength)
        return stride(from: 0, to: blockHashes.count, by: perPiece).map { start in
            let blocks = Array(blockHashes[start..<min(start + perPiece, blockHashes.count)])
            return root(of: blocks, width: perPiece, padding: zeroLeaf)
        }
    }

    /// A file's root rebuilt from its piece layer; hashes missing past the end of the file stand for
    /// subtrees of zero leaves. Equal to ``fileRoot(blockHashes:)`` for files longer than one piece.
    public static func root(pieceLayer: [SHA256Digest], pieceLength: Int) -> SHA256Digest {
        root(of: pieceLayer, padding: paddingHash(leafCount: blocksPerPiece(pieceLength)))
    }

    /// Every layer of a file's tree from its piece layer up to the root, each at its full width (the
    /// piece layer padded to a power of two with ``paddingHash(leafCount:)``): what BEP 52 hash requests
    /// are answered from. The last layer is the root alone.
    public static func layers(pieceLayer: [SHA256Digest], pieceLength: Int) -> [[SHA256Digest]] {
        let width = nextPowerOfTwo(max(pieceLayer.count, 1))
        let hasher = StreamingHasher(.sha256)
        var layer = pieceLayer
        layer += Array(
            repeating: paddingHash(leafCount: blocksPerPiece(pieceLength)), count: width - pieceLayer.count)
        var layers = [layer]
        while layer.count > 1 {
            layer = stride(from: 0, to: layer.count, by: 2).map {
                parent(layer[$0], layer[$0 + 1], hasher: hasher)
            }
            layers.append(layer)
        }
        return layers
    }

    /// The hashes of a BEP 52 `hashes` answer, from the tree's `layers` (see
    /// ``layers(pieceLayer:pieceLength:)``; the request's base layer is the first of them): `length`
    /// hashes from `index` (the whole layer when it is shorter), then one uncle for each proof layer from
    /// the `log2(length)`th up (the first `log2(length) - 1` are implied by the hashes themselves), none
    /// above the root. Nil when the request is malformed: `length` not a power of two of at least 2,
    /// or above `maximumAnswerLength`, `index` not a multiple of it or past the layer's end.
    public static func hashesAnswer(
        layers: [[SHA256Digest]], index: Int, length: Int, proofLayers: Int
    ) -> [SHA256Digest]? {
        guard let base = layers.first, length >= 2, length <= maximumAnswerLength, length & (length - 1) == 0,
            index >= 0,
            index % length == 0,
            index < base.count, proofLayers >= 0
        else { return nil }
        let count = min(length, base.count - index)
        var hashes = Array(base[index..<index + count])
        let covered = count.trailingZeroBitCount
        var layer = max(covered, 1)
        while layer <= proofLayers && layer < layers.count - 1 {
            hashes.append(layers[layer][(index >> layer) ^ 1])
            layer += 1
        }
        return hashes
    }

    /// The most hashes a request is answered with (BEP 52: a request should not ask for more), so that
    /// one request of 48 bytes cannot ask for megabytes.
    public static let maximumAnswerLength = 512

    static func nextPowerOfTwo(_ value: Int) -> Int {
        var power = 1
        while power < value { power *= 2 }
        return power
    }
}
