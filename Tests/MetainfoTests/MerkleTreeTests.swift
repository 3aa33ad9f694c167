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

    /// BEP 52 `hashes` answers from a piece layer of 11 pieces (a tree 16 wide, 5 layers): the hashes
    /// asked for, then uncles from the `log2(length)`th proof layer up; with enough proof layers they
    /// rebuild the root, as a requester checks them.
    @Test func hashRequestAnswersCarryTheProofUpToTheRoot() throws {
        let pieceLength = 64 * 1024
        let layer = (0..<11).map { SHA256.hash([UInt8($0)]) }
        let root = MerkleTree.root(pieceLayer: layer, pieceLength: pieceLength)
        let layers = MerkleTree.layers(pieceLayer: layer, pieceLength: pieceLength)
        #expect(layers.map(\.count) == [16, 8, 4, 2, 1] && layers.last == [root])
        #expect(layers[0][11] == MerkleTree.paddingHash(leafCount: 4), "padding past the file's end")

        for (index, length) in [(0, 2), (2, 2), (8, 4), (8, 8), (0, 16)] {
            let k = length.trailingZeroBitCount
            let answer = try #require(
                MerkleTree.hashesAnswer(layers: layers, index: index, length: length, proofLayers: 4))
            #expect(Array(answer.prefix(length)) == Array(layers[0][index..<index + length]))
            #expect(answer.count == length + (4 - k), "(\(index), \(length))")
            // The requester's check: the subtree's root, then up through each uncle.
            var level = Array(answer.prefix(length))
            while level.count > 1 {
                level = stride(from: 0, to: level.count, by: 2).map { pair(level[$0], level[$0 + 1]) }
            }
            var hash = level[0]
            var position = index >> k
            for uncle in answer.dropFirst(length) {
                hash = position & 1 == 0 ? pair(hash, uncle) : pair(uncle, hash)
                position >>= 1
            }
            #expect(hash == root, "(\(index), \(length))")
        }
        // The first log2(length) - 1 proof layers are implied: none is sent until the subtree's root.
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 8, length: 4, proofLayers: 1)?.count == 4)
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 8, length: 4, proofLayers: 2)?.count == 5)
        // Malformed: not a power of two, misaligned, past the end, or a single hash.
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 0, length: 3, proofLayers: 0) == nil)
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 2, length: 4, proofLayers: 0) == nil)
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 16, length: 2, proofLayers: 0) == nil)
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 0, length: 1, proofLayers: 0) == nil)
        #expect(MerkleTree.hashesAnswer(layers: layers, index: 0, length: 32, proofLayers: 4)?.count == 16)

        // At most 512 hashes, as BEP 52 asks of requests, however long the layer.
        let long = MerkleTree.layers(
            pieceLayer: (0..<2048).map { SHA256.hash([UInt8(truncatingIfNeeded: $0)]) },
            pieceLength: pieceLength)
        #expect(MerkleTree.hashesAnswer(layers: long, index: 512, length: 512, proofLayers: 0)?.count == 512)
        #expect(MerkleTree.hashesAnswer(layers: long, index: 0, length: 1024, proofLayers: 0) == nil)
    }
}
