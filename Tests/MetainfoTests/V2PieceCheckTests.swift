import Hashing
import Testing
import TorrentModel

@testable import Metainfo

/// BEP 52 roots and piece layers for every shape of v2 piece, against vectors computed outside Potluck:
/// Python's hashlib over the definition (a recursive merkle root with 32-zero-byte leaves past the data),
/// pasted here as hex. Regression for issue #19: the last piece of a file, and files shorter than a
/// piece, were hashed with the alignment gap after the file.
@Suite struct V2PieceCheckTests {
    /// Byte `i` of a file is `(i mod 251 + seed) mod 256`: a period prime to 16 KiB, so no two blocks of
    /// a file are equal and a misplaced block changes the hash.
    static func content(length: Int, seed: Int) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 % 251 + seed) }
    }

    static func digest(_ hex: String) -> SHA256Digest {
        guard let bytes = Hex.decode(hex), let digest = SHA256Digest(bytes: bytes) else {
            preconditionFailure("bad vector \(hex)")
        }
        return digest
    }

    /// A file, its `pieces root`, and its piece layers for 32 and 64 KiB pieces where it is longer.
    struct Vector: Sendable, CustomStringConvertible {
        let name: String
        let length: Int
        let seed: Int
        let root: String
        let layers: [Int: [String]]

        var content: [UInt8] { V2PieceCheckTests.content(length: length, seed: seed) }
        var description: String { name }
    }

    static let vectors = [
        Vector(
            name: "lastPieceOneLeaf", length: 2 * 32768 + 896, seed: 1,
            root: "0525845f03f750454453e99d5e702c09d475bd5109a17d034b8ff8d78f2bd8f2",
            layers: [
                32768: [
                    "bf60dcc6a9d5b17a396b845e01e93eb8cb1755773d8f707943c810dd1800ae80",
                    "b16c890fa9da716e74b7a755b6e0a834001be2f99adedc6c72db3acb3785f39d",
                    "e681bb0819c6731eadacdbd0a421c2ea39ce4aaae6d9f8e9b41b1b95043539c1",
                ],
                65536: [
                    "5128efedfd7dee957f392553a1205f8c27dcd4c268cfd6e8716dcc77481f6d2b",
                    "284bf8a540523e323ae1405f797ab88de5e063edd347f18e01416b4bcbc839fe",
                ],
            ]),
        // The shape: 17,280 bytes in the last piece, a full leaf and a short one.
        Vector(
            name: "lastPieceTwoLeaves", length: 3 * 32768 + 17280, seed: 2,
            root: "a966612f96db1d6f8b7043434805b34a3e4c8e8ca9853452928911065a7abd1f",
            layers: [
                32768: [
                    "0b9159819d9a7a80af67880f51303203a221bcc516ac7c1f431321982218ece3",
                    "1e59d9d4eeb888d5be06c40cba9cab8d9c32d30149e56f59c35207ad02fd52e1",
                    "77c0479878dc8bbd0371d901df97787adc8e2620abb615bbedfe7e81d2437a8b",
                    "f751a084a5dc99e0fb456e9c9ba6d62f157beb8716f946ecefd8f7728f19ad3c",
                ],
                65536: [
                    "9fbc928e800d86431ce73fe5c49a56da3f96a66990512a5cec8699ceade91a61",
                    "02f386a80e6b17ea7e4e6216645f66fcf8f37340f8a65726f04699079c0a51f3",
                ],
            ]),
        Vector(
            name: "multipleOfBlock", length: 2 * 32768 + 16384, seed: 3,
            root: "0cb07a9c38b5d961a0d8a93f62218de5cf614098f83204695b1ae219d17f987e",
            layers: [
                32768: [
                    "8272d0769f342106dda0cea16692e15068fe5dd0cdb5afa597db0741934de057",
                    "4cfac20b72a2c888775243737d4b2eb4df1b4257b2c02901fd5ca2c9040d0ef3",
                    "90aec165068f2dc0bd9c53aebd7048ca5818b388bd5fc9b416d0da9b7ef237cc",
                ],
                65536: [
                    "97beb0db76979ec1ec70b41a2a5475e2bf6e5f74d4282c18c94f149766d788ac",
                    "a96804165433f27ea2aff5e83c6f0ea686f00eee4f20cb2b36815df79f72da43",
                ],
            ]),
        Vector(
            name: "oneFullBlock", length: 16384, seed: 4,
            root: "34b8a9b297b7afcc00d1d08bdd959faecd75273b6a45d10e64db2a6497eb68c3", layers: [:]),
        Vector(
            name: "oneShortBlock", length: 1000, seed: 5,
            root: "3dfb51068d9068d39cbf65849faa5c82c4098061d2b3318a8222ebc3a78c5b34", layers: [:]),
        Vector(
            name: "shorterThanPiece", length: 20000, seed: 6,
            root: "f7091d2d1da6b6e386360fc6678a6ba39eb5fbe0f023dc5e0a94d01a4cf00dd5", layers: [:]),
        Vector(
            name: "exactlyOnePiece", length: 32768, seed: 7,
            root: "bfc164eedd260f78349806116aded90e52f9ec95256d7831380d8fc9f82a16e0", layers: [:]),
        // Longer than a 32 KiB piece, shorter than a 64 KiB one: three leaves and a zero one.
        Vector(
            name: "threeBlocksAndABit", length: 3 * 16384 + 5, seed: 8,
            root: "8a81d4bcaad78120028fcc40b0b85562487e239b1114ddd3a75e08452b7eea87",
            layers: [
                32768: [
                    "3370940fd4ef4413fb1198046ac63bc5889bf2b1128b39abfab909ce9f7f581f",
                    "b21fd9da6b12ea4120d3c0d11b23ebd19950ea32114237b7844fd5f1256177fc",
                ]
            ]),
    ]

    @Test(arguments: vectors)
    func rootsAndLayersMatchTheVectors(vector: Vector) {
        let blocks = MerkleTree.blockHashes(of: vector.content)
        #expect(MerkleTree.fileRoot(blockHashes: blocks) == Self.digest(vector.root))
        for pieceLength in [32768, 65536] where vector.length > pieceLength {
            let layer = MerkleTree.pieceLayer(blockHashes: blocks, pieceLength: pieceLength)
            #expect(layer == vector.layers[pieceLength]?.map(Self.digest), "\(pieceLength)")
            #expect(MerkleTree.root(pieceLayer: layer, pieceLength: pieceLength) == Self.digest(vector.root))
        }
    }

    @Test func leafCountsForEveryShapeAndPieceLength() {
        var pieceLength = 16 * 1024
        while pieceLength <= 4 * 1024 * 1024 {
            let perPiece = pieceLength / 16384
            // Longer than a piece: every piece, the last included, is under a full piece-layer subtree.
            #expect(
                MerkleTree.leafCount(ofPieceIn: Int64(pieceLength) + 1, pieceLength: pieceLength) == perPiece)
            #expect(MerkleTree.leafCount(ofPieceIn: Int64(pieceLength), pieceLength: pieceLength) == perPiece)
            #expect(MerkleTree.leafCount(ofPieceIn: 1, pieceLength: pieceLength) == 1)
            #expect(MerkleTree.leafCount(ofPieceIn: 16384, pieceLength: pieceLength) == 1)
            if pieceLength >= 65536 {
                #expect(MerkleTree.leafCount(ofPieceIn: 3 * 16384 + 5, pieceLength: pieceLength) == 4)
                #expect(MerkleTree.leafCount(ofPieceIn: 16385, pieceLength: pieceLength) == 2)
            }
            pieceLength *= 2
        }
    }

    /// A v2 torrent of every shape, in nested folders and with an empty file, built from the vectors
    /// alone: each piece's check names the vector's hash, the file's bytes in the piece and its leaves.
    @Test(arguments: [32768, 65536])
    func everyPieceIsCheckedAgainstTheVectorsOverTheFilesOwnBytes(pieceLength: Int) throws {
        let usable = Self.vectors.filter { $0.length <= pieceLength || $0.layers[pieceLength] != nil }
        var files = usable.enumerated().map { index, vector in
            TorrentBuilder.File(
                path: index % 2 == 0 ? [vector.name] : ["nested", "deeper", vector.name],
                length: Int64(vector.length), piecesRoot: Self.digest(vector.root),
                pieceLayer: vector.length > pieceLength
                    ? (vector.layers[pieceLength] ?? []).map(Self.digest) : [])
        }
        files.append(TorrentBuilder.File(path: ["nested", "empty"], length: 0))
        let torrent = try Metainfo(
            bytes: TorrentBuilder(name: "shapes", files: files, pieceLength: pieceLength, format: .v2).build()
        )

        var checkedPieces = 0
        for vector in usable {
            let fileIndex = try #require(torrent.files.firstIndex { $0.path.last == vector.name })
            let pieces = torrent.layout.pieceRange(ofFile: fileIndex)
            #expect(pieces.count == (vector.length + pieceLength - 1) / pieceLength)
            for (position, piece) in pieces.enumerated() {
                let check = try #require(torrent.v2PieceCheck(PieceIndex(piece)), "\(vector) \(piece)")
                #expect(check.fileIndex == fileIndex)
                let expected =
                    vector.length > pieceLength ? vector.layers[pieceLength]?[position] : vector.root
                #expect(check.expectedRoot == expected.map(Self.digest), "\(vector) piece \(position)")
                let dataLength = min(pieceLength, vector.length - position * pieceLength)
                #expect(check.dataLength == dataLength, "\(vector) piece \(position)")
                let blocks = (vector.length + 16383) / 16384
                let roundedUp = 1 << ((blocks - 1).bitWidth - (blocks - 1).leadingZeroBitCount)
                let leaves = vector.length > pieceLength ? pieceLength / 16384 : roundedUp
                #expect(check.leafCount == leaves, "\(vector) piece \(position)")
                checkedPieces += 1
            }
        }
        // Every piece of the torrent belongs to one of the files: the empty one has none.
        #expect(checkedPieces == torrent.pieceCount)
        #expect(torrent.v2PieceCheck(PieceIndex(torrent.pieceCount)) == nil)
    }
}
