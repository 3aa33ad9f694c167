import Bencode
import Hashing
import Testing
import TorrentModel

@testable import Metainfo

/// Torrents made with `TorrentBuilder` and parsed back with `Metainfo`.
@Suite struct RoundTripTests {
    @Test func v1SingleFileWithEveryOptionalField() throws {
        let content = Fixtures.content(length: 40_000, seed: 1)
        var builder = try Fixtures.builder(
            name: "movie.mkv", files: [(["movie.mkv"], content)], pieceLength: 16384, format: .v1)
        builder.trackers = [
            ["http://a.example/announce", "http://b.example/announce"], ["udp://c.example:6969"],
        ]
        builder.webSeeds = ["http://seed.example/files/"]
        builder.isPrivate = true
        builder.comment = "a comment"
        builder.createdBy = "Potluck tests"
        builder.creationDate = 1_700_000_000
        builder.source = "TRACKER"
        let bytes = try builder.build()
        let torrent = try Metainfo(bytes: bytes)

        #expect(torrent.version == .v1)
        #expect(torrent.name == "movie.mkv")
        #expect(torrent.totalLength == 40_000)
        #expect(torrent.pieceLength == 16384)
        #expect(torrent.pieceCount == 3)
        #expect(torrent.geometry == PieceGeometry(totalLength: 40_000, pieceLength: 16384))
        #expect(torrent.files == [FileEntry(path: ["movie.mkv"], length: 40_000, offset: 0)])
        #expect(torrent.trackers == builder.trackers)
        #expect(torrent.webSeeds == builder.webSeeds)
        #expect(torrent.isPrivate)
        #expect(torrent.comment == "a comment")
        #expect(torrent.createdBy == "Potluck tests")
        #expect(torrent.creationDate == 1_700_000_000)
        #expect(torrent.source == "TRACKER")
        #expect(torrent.infoHashV2 == nil)
        for piece in 0..<3 {
            let start = piece * 16384
            let expected = SHA1.hash(content[start..<min(start + 16384, content.count)])
            #expect(torrent.pieceHash(PieceIndex(piece)) == expected)
        }
        #expect(torrent.pieceHash(PieceIndex(3)) == nil)
    }

    @Test func v1InfohashIsSHA1OfTheExactInfoBytes() throws {
        let bytes = try Fixtures.builder(
            name: "a", files: [(["a"], Fixtures.content(length: 100, seed: 2))], pieceLength: 16384,
            format: .v1
        ).build()
        let torrent = try Metainfo(bytes: bytes)
        let info = try #require(try BencodeDocument(bytes: bytes).root["info"])
        #expect(torrent.infoBytes == info.encodedBytes)
        #expect(torrent.infoHashV1 == InfoHash(v1Digest: SHA1.hash(info.encodedBytes)))
        #expect(torrent.wireInfoHash == torrent.infoHashV1)
        // The same info dictionary on its own (as fetched over BEP 9) gives the same torrent identity.
        let bare = try Metainfo(infoDictionary: Array(info.encodedBytes))
        #expect(bare.infoHashV1 == torrent.infoHashV1)
        #expect(bare.files == torrent.files)
        #expect(bare.trackers.isEmpty)
    }

    @Test func v1MultiFileOffsetsAndLayout() throws {
        let files: [([String], [UInt8])] = [
            (["a.txt"], Fixtures.content(length: 10_000, seed: 1)),
            (["sub", "b.txt"], Fixtures.content(length: 0, seed: 2)),
            (["sub", "c.txt"], Fixtures.content(length: 30_000, seed: 3)),
        ]
        let torrent = try Metainfo(
            bytes: try Fixtures.builder(name: "top", files: files, pieceLength: 16384, format: .v1).build())
        #expect(
            torrent.files.map(\.path) == [
                ["top", "a.txt"], ["top", "sub", "b.txt"], ["top", "sub", "c.txt"],
            ])
        #expect(torrent.files.map(\.offset) == [0, 10_000, 10_000])
        #expect(torrent.totalLength == 40_000)
        #expect(
            torrent.layout.spans(of: PieceIndex(0)) == [
                FileSpan(fileIndex: 0, fileOffset: 0, length: 10_000, isPadding: false),
                FileSpan(fileIndex: 2, fileOffset: 0, length: 6384, isPadding: false),
            ])
        #expect(
            torrent.layout.spans(of: PieceIndex(2)) == [
                FileSpan(fileIndex: 2, fileOffset: 22_768, length: 7232, isPadding: false)
            ])
        #expect(torrent.layout.pieceRange(ofFile: 2) == 0..<3)
        #expect(torrent.layout.pieceRange(ofFile: 1) == 0..<0)
    }

    @Test func v2MultiFilePiecesAlignAndLayersVerify() throws {
        let files: [([String], [UInt8])] = [
            (["b.bin"], Fixtures.content(length: 70_000, seed: 4)),
            (["a.bin"], Fixtures.content(length: 20_000, seed: 5)),
            (["empty"], []),
        ]
        let pieceLength = 32 * 1024
        let bytes = try Fixtures.builder(name: "v2", files: files, pieceLength: pieceLength, format: .v2)
            .build()
        let torrent = try Metainfo(bytes: bytes)
        #expect(torrent.version == .v2)
        #expect(torrent.infoHashV1 == nil)
        #expect(torrent.infoHashV2 == SHA256.hash(torrent.infoBytes))
        #expect(torrent.wireInfoHash == InfoHash(SHA256.hash(torrent.infoBytes).bytes.prefix(20)))
        #expect(torrent.hasPieceLayers)
        // File-tree order, with a synthetic padding entry after a.bin so that b.bin starts on a piece,
        // and one at the end that completes the last piece.
        #expect(
            torrent.files.map(\.path) == [
                ["v2", "a.bin"], [".pad", "12768"], ["v2", "b.bin"], ["v2", "empty"], [".pad", "28304"],
            ])
        #expect(torrent.files.map(\.offset) == [0, 20_000, 32_768, 102_768, 102_768])
        #expect(torrent.totalLength == 4 * 32768)
        // a.bin fills both blocks of piece 0; b.bin's last piece holds 4,464 bytes, in its first block.
        #expect(torrent.layout.dataBlockCounts() == [PieceIndex(3): 1])
        #expect(torrent.files[1].isPadding)
        #expect(torrent.pieceCount == 4)

        let bBlocks = MerkleTree.blockHashes(of: files[0].1)
        let bLayer = MerkleTree.pieceLayer(blockHashes: bBlocks, pieceLength: pieceLength)
        #expect(torrent.files[2].piecesRoot == MerkleTree.fileRoot(blockHashes: bBlocks))
        #expect(torrent.pieceLayer(ofFile: 2) == bLayer)
        #expect(torrent.pieceLayer(ofFile: 0) == nil)  // a.bin fits in one piece
        // Piece 0 is all of a.bin, checked against its root; pieces 1...3 are b.bin's layer.
        let aRoot = MerkleTree.fileRoot(blockHashes: MerkleTree.blockHashes(of: files[1].1))
        #expect(torrent.v2PieceHash(PieceIndex(0))?.hash == aRoot)
        #expect(torrent.v2PieceHash(PieceIndex(0))?.fileIndex == 0)
        for piece in 1...3 {
            #expect(torrent.v2PieceHash(PieceIndex(piece))?.hash == bLayer[piece - 1])
            #expect(torrent.v2PieceHash(PieceIndex(piece))?.fileIndex == 2)
        }
        #expect(torrent.pieceHash(PieceIndex(0)) == nil)
    }

    @Test func v2SingleFile() throws {
        let content = Fixtures.content(length: 50_000, seed: 6)
        let torrent = try Metainfo(
            bytes: try Fixtures.builder(
                name: "one.iso", files: [(["one.iso"], content)], pieceLength: 16384, format: .v2
            )
            .build())
        #expect(torrent.files.map(\.path) == [["one.iso"], [".pad", "15536"]])
        // The last piece is padded to full length, as libtorrent asks for it.
        #expect(torrent.totalLength == 65536)
        #expect(torrent.pieceLayer(ofFile: 0)?.count == 4)
    }

    @Test func hybridGetsPaddingAndBothHashes() throws {
        let files: [([String], [UInt8])] = [
            (["x", "1.dat"], Fixtures.content(length: 20_000, seed: 7)),
            (["x", "2.dat"], Fixtures.content(length: 16384, seed: 8)),
            (["y.dat"], Fixtures.content(length: 5, seed: 9)),
        ]
        let builder = try Fixtures.builder(name: "hy", files: files, pieceLength: 16384, format: .hybrid)
        let torrent = try Metainfo(bytes: try builder.build())
        #expect(torrent.version == .hybrid)
        #expect(torrent.infoHashV1 == InfoHash(v1Digest: SHA1.hash(torrent.infoBytes)))
        #expect(torrent.infoHashV2 == SHA256.hash(torrent.infoBytes))
        #expect(
            torrent.files.map(\.path) == [
                ["hy", "x", "1.dat"], ["hy", ".pad", "12768"], ["hy", "x", "2.dat"], ["hy", "y.dat"],
            ])
        #expect(torrent.files.map(\.offset) == [0, 20_000, 32_768, 49_152])
        #expect(torrent.files[1].isPadding)
        #expect(torrent.files.filter { !$0.isPadding }.allSatisfy { $0.piecesRoot != nil })
        #expect(torrent.pieceCount == 4)
        #expect(
            torrent.layout.spans(of: PieceIndex(1)) == [
                FileSpan(fileIndex: 0, fileOffset: 16384, length: 3616, isPadding: false),
                FileSpan(fileIndex: 1, fileOffset: 0, length: 12768, isPadding: true),
            ])
    }

    @Test(arguments: [UInt64(11), 12, 13, 14, 15, 16])
    func randomTorrentsRoundTripInEveryFormat(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let pieceLength = [16384, 32768, 65536].randomElement(using: &rng) ?? 16384
        var files: [([String], [UInt8])] = []
        for index in 0..<Int.random(in: 1...5, using: &rng) {
            let length =
                [0, 1, 16383, 16384, 16385, 70_000, Int.random(in: 1...150_000, using: &rng)]
                .randomElement(using: &rng) ?? 1
            files.append(
                (
                    ["d\(index % 2)", "f\(index)"],
                    Fixtures.content(length: length, seed: seed &+ UInt64(index))
                ))
        }
        guard files.contains(where: { !$0.1.isEmpty }) else { return }
        for format in [TorrentBuilder.Format.v1, .v2, .hybrid] {
            let builder = try Fixtures.builder(
                name: "r", files: files, pieceLength: pieceLength, format: format)
            let torrent = try Metainfo(bytes: try builder.build())
            let real = torrent.files.filter { !$0.isPadding }
            #expect(real.count == files.count)
            #expect(real.reduce(0) { $0 + $1.length } == Int64(files.reduce(0) { $0 + $1.1.count }))
            #expect(torrent.pieceLength == pieceLength)
            // Every v2 piece hash matches one recomputed from the file's own content.
            guard format != .v1 else { continue }
            let contents = Dictionary(uniqueKeysWithValues: files.map { (["r"] + $0.0, $0.1) })
            for piece in 0..<torrent.pieceCount {
                let (hash, fileIndex) = try #require(torrent.v2PieceHash(PieceIndex(piece)))
                let file = torrent.files[fileIndex]
                let content = try #require(contents[file.path])
                let blocks = MerkleTree.blockHashes(of: content)
                let expected =
                    content.count <= pieceLength
                    ? MerkleTree.fileRoot(blockHashes: blocks)
                    : MerkleTree.pieceLayer(blockHashes: blocks, pieceLength: pieceLength)[
                        piece - torrent.layout.pieceRange(ofFile: fileIndex).lowerBound]
                #expect(hash == expected, "seed \(seed) \(format) piece \(piece)")
            }
        }
    }

    /// Regression: the builder grouped file-tree directories by String equality, which treats NFC and
    /// NFD spellings of "é" as one name, so the v2 tree merged two directories the v1 list kept apart.
    @Test func differentlyNormalizedDirectoriesStayApart() throws {
        let files: [([String], [UInt8])] = [
            (["e\u{301}", "a"], Fixtures.content(length: 10, seed: 1)),
            (["\u{e9}", "b"], Fixtures.content(length: 10, seed: 2)),
        ]
        for format in [TorrentBuilder.Format.v2, .hybrid] {
            let torrent = try Metainfo(
                bytes: try Fixtures.builder(name: "h", files: files, pieceLength: 16384, format: format)
                    .build())
            let real = torrent.files.filter { !$0.isPadding }
            #expect(
                real.map { $0.path.map { Array($0.utf8) } } == [
                    [Array("h".utf8), [0x65, 0xcc, 0x81], Array("a".utf8)],
                    [Array("h".utf8), [0xc3, 0xa9], Array("b".utf8)],
                ], "\(format)")
        }
    }

    /// Regression (found by BuilderFuzz): a v2 torrent whose only file sits at the top of the tree under
    /// a name other than the torrent's was parsed as single-file, dropping the folder the builder meant.
    @Test func loneTopLevelFileNotNamedLikeTheTorrentKeepsItsFolder() throws {
        for format in [TorrentBuilder.Format.v1, .v2, .hybrid] {
            let builder = try Fixtures.builder(
                name: "n", files: [(["\u{1}"], Fixtures.content(length: 4610, seed: 1))], pieceLength: 65536,
                format: format)
            let files = try Metainfo(bytes: builder.build()).files.filter { !$0.isPadding }
            #expect(files.map(\.path) == [["n", "\u{1}"]], "\(format)")
        }
        let single = try Fixtures.builder(
            name: "n", files: [(["n"], Fixtures.content(length: 10, seed: 1))], pieceLength: 16384,
            format: .v2)
        #expect(try Metainfo(bytes: single.build()).files.filter { !$0.isPadding }.map(\.path) == [["n"]])
    }

    @Test func automaticPieceLength() {
        #expect(TorrentBuilder.automaticPieceLength(totalLength: 0) == 16384)
        #expect(TorrentBuilder.automaticPieceLength(totalLength: 2000 * 16384) == 16384)
        #expect(TorrentBuilder.automaticPieceLength(totalLength: 2000 * 16384 + 1) == 32768)
        #expect(TorrentBuilder.automaticPieceLength(totalLength: 4 * 1024 * 1024 * 1024) == 4 * 1024 * 1024)
        #expect(TorrentBuilder.automaticPieceLength(totalLength: 1 << 50) == 16 * 1024 * 1024)
        // In the normal range the result gives between 1000 and 2000 pieces.
        for total in [Int64(100_000_000), 700_000_000, 3_000_000_000] {
            let length = Int64(TorrentBuilder.automaticPieceLength(totalLength: total))
            #expect((1000...2000).contains((total + length - 1) / length))
        }
    }

    @Test func builderRejectsBadInput() throws {
        let content = Fixtures.content(length: 100, seed: 1)
        var builder = try Fixtures.builder(
            name: "n", files: [(["n"], content)], pieceLength: 16384, format: .v1)
        builder.pieceHashesV1 = []
        #expect(throws: MetainfoError.pieceCountMismatch(expected: 1, actual: 0)) { try builder.build() }
        var v2 = try Fixtures.builder(name: "n", files: [(["n"], content)], pieceLength: 16384, format: .v2)
        v2.files[0].piecesRoot = nil
        #expect(throws: MetainfoError.invalidBuilderInput("file n has no pieces root")) { try v2.build() }
        let bad = TorrentBuilder(
            name: "n", files: [.init(path: ["..", "x"], length: 1)], pieceLength: 16384, format: .v1)
        #expect(throws: MetainfoError.unsafePath(field: "files.path", path: [".."], reason: .parentDirectory))
        {
            try bad.build()
        }
        let badPiece = TorrentBuilder(
            name: "n", files: [.init(path: ["n"], length: 1)], pieceLength: 20000, format: .v1)
        #expect(throws: MetainfoError.invalidPieceLength(20000)) { try badPiece.build() }
    }
}
