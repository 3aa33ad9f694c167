import Hashing
import Testing

@testable import Metainfo

/// BEP 52's merkle tree, checked against hashes computed by hand from the definition.
@Suite struct MerkleTreeTests {
    func pair(_ a: SHA256Digest, _ b: SHA256Digest) -> SHA256Digest { SHA256.hash(a.bytes + b.bytes) }

    @Test func paddingLeavesAreZeroBytesNotHashesOfZeroBlocks() {
        #expect(MerkleTree.zeroLeaf.bytes == [UInt8](repeating: 0, count: 32))
        #expect(MerkleTree.paddingHash(leafCount: 1) == MerkleTree.zeroLeaf)
        let two = pair(MerkleTree.zeroLeaf, MerkleTree.zeroLeaf)
        #expect(MerkleTree.paddingHash(leafCount: 2) == two)
        #expect(MerkleTree.paddingHash(leafCount: 4) == pair(two, two))
    }

    @Test func fileRootsOfSmallFiles() throws {
        #expect(MerkleTree.fileRoot(blockHashes: []) == nil)
        let oneBlock = Fixtures.content(length: 100, seed: 1)
        #expect(
            MerkleTree.fileRoot(blockHashes: MerkleTree.blockHashes(of: oneBlock)) == SHA256.hash(oneBlock))

        let threeBlocks = Fixtures.content(length: 2 * 16384 + 5, seed: 2)
        let h = [
            SHA256.hash(threeBlocks[0..<16384]), SHA256.hash(threeBlocks[16384..<32768]),
            SHA256.hash(threeBlocks[32768...]),
        ]
        #expect(MerkleTree.blockHashes(of: threeBlocks) == h)
        let expected = pair(pair(h[0], h[1]), pair(h[2], MerkleTree.zeroLeaf))
        #expect(MerkleTree.fileRoot(blockHashes: h) == expected)
    }

    @Test func pieceLayerHashesCoverPieceLengthAndRebuildTheRoot() throws {
        // 5 blocks with 32 KiB pieces: 3 piece hashes, the last over one block and one zero leaf.
        let h = (0..<5).map { SHA256.hash([UInt8($0)]) }
        let layer = MerkleTree.pieceLayer(blockHashes: h, pieceLength: 32768)
        #expect(layer == [pair(h[0], h[1]), pair(h[2], h[3]), pair(h[4], MerkleTree.zeroLeaf)])
        // The omitted fourth piece hash stands for two zero leaves, not for zero bytes.
        let root = pair(pair(layer[0], layer[1]), pair(layer[2], MerkleTree.paddingHash(leafCount: 2)))
        #expect(MerkleTree.root(pieceLayer: layer, pieceLength: 32768) == root)
        #expect(MerkleTree.fileRoot(blockHashes: h) == root)
    }

    @Test func layerRootEqualsFileRootForEveryFileLongerThanAPiece() {
        for blockCount in 5...40 {
            let h = (0..<blockCount).map { SHA256.hash([UInt8($0), 1]) }
            for pieceLength in [16384, 32768, 65536] where blockCount * 16384 > pieceLength {
                let layer = MerkleTree.pieceLayer(blockHashes: h, pieceLength: pieceLength)
                #expect(
                    MerkleTree.root(pieceLayer: layer, pieceLength: pieceLength)
                        == MerkleTree.fileRoot(blockHashes: h))
            }
        }
    }
}
