/// Computes BEP 52 merkle roots over a buffer, reusing one scratch layer so a worker allocates only
/// when it meets a larger piece than before.
struct MerkleHasher {
    /// BEP 52's leaf block size.
    static let blockLength = 16 * 1024

    private var layer: [SHA256Digest] = []

    /// Whether `length` bytes have at most `leafCount` blocks and `leafCount` is a power of two.
    static func fits(length: Int, leafCount: Int) -> Bool {
        leafCount > 0 && leafCount & (leafCount - 1) == 0
            && (length + blockLength - 1) / blockLength <= leafCount
    }

    /// The root over the 16 KiB blocks of `bytes` (the last may be short), padded with zero leaves to
    /// `leafCount`.
    mutating func root(
        of bytes: UnsafeRawBufferPointer, leafCount: Int, hasher: StreamingHasher
    ) -> SHA256Digest {
        precondition(Self.fits(length: bytes.count, leafCount: leafCount), "too many blocks for the tree")
        layer.removeAll(keepingCapacity: true)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + Self.blockLength, bytes.count)
            hasher.update(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            layer.append(hasher.finishSHA256())
            offset = end
        }
        let zero = SHA256Digest(bytes: [UInt8](repeating: 0, count: 32))!
        // Leaves past the data are 32 zero bytes; above them, the subtree of zeros doubles up each layer.
        var padding = zero
        var width = leafCount
        while width > 1 {
            var next = 0
            var i = 0
            while i < width {
                let left = i < layer.count ? layer[i] : padding
                let right = i + 1 < layer.count ? layer[i + 1] : padding
                if i >= layer.count { break }
                left.withUnsafeBytes { hasher.update($0) }
                right.withUnsafeBytes { hasher.update($0) }
                layer[next] = hasher.finishSHA256()
                next += 1
                i += 2
            }
            layer.removeLast(layer.count - next)
            padding.withUnsafeBytes { hasher.update($0) }
            padding.withUnsafeBytes { hasher.update($0) }
            padding = hasher.finishSHA256()
            width /= 2
        }
        return layer.first ?? padding
    }
}
