import Bencode
import Hashing
import Testing

@testable import Metainfo

/// Hand-written broken torrents, each rejected with the error that names its problem.
@Suite struct MalformedTorrentTests {
    typealias F = Fixtures

    @Test func theMinimalFixtureIsValid() throws {
        // Every case below breaks exactly one thing in this torrent.
        let torrent = try Metainfo(bytes: F.torrent(info: F.v1Info()))
        #expect(torrent.pieceCount == 3)
        #expect(
            try Metainfo(bytes: F.torrent(info: F.v1MultiInfo(paths: [["a"], ["b", "c"]]))).files.count == 2)
    }

    @Test func notBencodeOrNotADictionary() {
        #expect(F.rejection(Array("d4:info".utf8)) == .bencode(.unexpectedEnd(offset: 7, expected: .value)))
        #expect(F.rejection(Array("le".utf8)) == .wrongType(field: "(root)", expected: .dictionary))
        #expect(F.rejection(Array("d4:infoi1ee".utf8)) == .wrongType(field: "info", expected: .dictionary))
    }

    @Test func missingKeys() {
        #expect(F.rejection(BencodeValue.dictionary(["announce": "x"]).encoded()) == .missingField("info"))
        for key: BencodeKey in ["name", "piece length", "pieces"] {
            var info = F.v1Info()
            info[key] = nil
            #expect(F.rejection(F.torrent(info: info)) == .missingField("info.\(key)"))
        }
        var info = F.v1Info()
        info["length"] = nil
        #expect(F.rejection(F.torrent(info: info)) == .missingField("info.files"))
        #expect(
            F.rejection(
                F.torrent(info: F.v1MultiInfo(paths: [["a"]]).merging(["files": [["length": 1]]]) { $1 }))
                == .missingField("info.files[0].path"))
    }

    @Test func wrongTypes() {
        var info = F.v1Info()
        info["name"] = 5
        #expect(F.rejection(F.torrent(info: info)) == .wrongType(field: "info.name", expected: .byteString))
        info = F.v1Info()
        info["piece length"] = "16384"
        #expect(
            F.rejection(F.torrent(info: info)) == .wrongType(field: "info.piece length", expected: .integer))
        info = F.v1MultiInfo(paths: [["a"]])
        info["files"] = ["not a dictionary"]
        #expect(
            F.rejection(F.torrent(info: info)) == .wrongType(field: "info.files[0]", expected: .dictionary))
        #expect(
            F.rejection(F.torrent(info: F.v1Info(), extra: ["announce-list": "http://x"]))
                == .wrongType(field: "announce-list", expected: .list))
        #expect(
            F.rejection(F.torrent(info: F.v1Info(), extra: ["url-list": 1]))
                == .wrongType(field: "url-list", expected: .list))
    }

    @Test func pieceLengthMustBeAPowerOfTwoOfAtLeast16KiB() {
        for bad: Int64 in [30000, 8192, 0, -16384, 1 << 40] {
            var info = F.v1Info()
            info["piece length"] = .integer(bad)
            #expect(F.rejection(F.torrent(info: info)) == .invalidPieceLength(bad))
        }
    }

    @Test func piecesMustBeWholeHashesMatchingTheTotalLength() {
        var info = F.v1Info()
        info["pieces"] = .bytes([UInt8](repeating: 1, count: 61))
        #expect(F.rejection(F.torrent(info: info)) == .invalidPiecesLength(byteCount: 61))
        info["pieces"] = .bytes([UInt8](repeating: 1, count: 40))
        #expect(F.rejection(F.torrent(info: info)) == .pieceCountMismatch(expected: 3, actual: 2))
        info["pieces"] = .bytes([UInt8](repeating: 1, count: 80))
        #expect(F.rejection(F.torrent(info: info)) == .pieceCountMismatch(expected: 3, actual: 4))
    }

    @Test func lengthsMustBeSaneAndNonEmpty() {
        var info = F.v1Info()
        info["files"] = [["length": 1, "path": ["a"]]]
        #expect(F.rejection(F.torrent(info: info)) == .conflictingFields("info.length", "info.files"))
        info = F.v1Info()
        info["length"] = -1
        #expect(F.rejection(F.torrent(info: info)) == .invalidFileLength(path: ["file.bin"], length: -1))
        info = F.v1Info()
        info["length"] = 0
        info["pieces"] = .bytes([])
        #expect(F.rejection(F.torrent(info: info)) == .emptyTorrent)
        info = F.v1MultiInfo(paths: [["a"]])
        info["files"] = [["length": .integer(.max), "path": ["a"]], ["length": 1, "path": ["b"]]]
        #expect(F.rejection(F.torrent(info: info)) == .totalLengthOverflow)
    }

    /// Regression: piece counts were computed as `(length + pieceLength - 1) / pieceLength`, which traps
    /// for lengths near `Int64.max`.
    @Test func lengthsNearInt64MaxAreRejectedWithoutTrapping() throws {
        var info = F.v1Info()
        info["length"] = .integer(.max)
        #expect(
            F.rejection(F.torrent(info: info))
                == .pieceCountMismatch(expected: 562_949_953_421_312, actual: 3))
        // A v2 file's size is not bounded by the torrent's size, so the piece count limit applies; padded
        // to a whole piece, a file of 2^63 - 1 bytes overflows first.
        func v2Info(length: Int64) -> [UInt8] {
            Array(
                ("d9:file treed1:ad0:d6:lengthi\(length)e11:pieces root32:\(String(repeating: "r", count: 32))"
                    + "eee12:meta versioni2e4:name1:n12:piece lengthi16384ee").utf8)
        }
        #expect(throws: MetainfoError.tooManyPieces(count: 1 << 48, limit: 1 << 22)) {
            try Metainfo(infoDictionary: v2Info(length: 1 << 62))
        }
        #expect(throws: MetainfoError.totalLengthOverflow) {
            try Metainfo(infoDictionary: v2Info(length: .max))
        }
        #expect(TorrentBuilder.automaticPieceLength(totalLength: .max) == 16 * 1024 * 1024)
        // A hybrid's padding after a file ending just short of the largest length: adding it trapped.
        let nearlyLargest = TorrentBuilder(
            name: "n",
            files: [
                TorrentBuilder.File(path: ["a"], length: .max - 1),
                TorrentBuilder.File(path: ["b"], length: 1),
            ], pieceLength: 16384, format: .hybrid)
        #expect(throws: MetainfoError.totalLengthOverflow) { try nearlyLargest.payloadFiles() }
    }

    struct HostilePath: Sendable, CustomStringConvertible {
        let path: BencodeValue
        let problem: MetainfoError.PathProblem
        /// The path as the error shows it: up to and including the bad component.
        let shown: [String]
        var description: String { "\(problem)" }
    }

    static let hostilePaths: [HostilePath] = [
        HostilePath(path: [".."], problem: .parentDirectory, shown: [".."]),
        HostilePath(path: ["a", "..", "b"], problem: .parentDirectory, shown: ["a", ".."]),
        HostilePath(path: ["."], problem: .currentDirectory, shown: ["."]),
        HostilePath(path: ["a", ""], problem: .emptyComponent, shown: ["a", ""]),
        HostilePath(path: ["/etc", "passwd"], problem: .absolute, shown: ["/etc"]),
        HostilePath(path: ["a", "/b"], problem: .containsSlash, shown: ["a", "/b"]),
        HostilePath(path: ["a/../../b"], problem: .containsSlash, shown: ["a/../../b"]),
        HostilePath(path: ["a\u{0}b"], problem: .containsNUL, shown: ["a\u{0}b"]),
        HostilePath(
            path: [.string(String(repeating: "n", count: 256))], problem: .componentTooLong(byteCount: 256),
            shown: [String(repeating: "n", count: 256)]),
        HostilePath(path: [.bytes([0x61, 0xff])], problem: .invalidUTF8, shown: ["a\u{FFFD}"]),
        HostilePath(path: [], problem: .empty, shown: []),
    ]

    /// Each way a path could leave the download folder or break a file system call.
    @Test(arguments: hostilePaths)
    func hostileV1Paths(_ hostile: HostilePath) {
        let bytes = F.torrent(info: F.v1MultiInfo(paths: [hostile.path]))
        #expect(
            F.rejection(bytes)
                == .unsafePath(field: "info.files[0].path", path: hostile.shown, reason: hostile.problem))
    }

    @Test func aComponentOfExactlyNameMaxIsAllowed() throws {
        let longest = String(repeating: "n", count: 255)
        let torrent = try Metainfo(bytes: F.torrent(info: F.v1MultiInfo(paths: [[.string(longest)]])))
        #expect(torrent.files[0].path == ["top", longest])
    }

    @Test func hostileNamesAndTooManyComponents() {
        var info = F.v1Info()
        info["name"] = ".."
        #expect(
            F.rejection(F.torrent(info: info))
                == .unsafePath(field: "info.name", path: [".."], reason: .parentDirectory))
        info["name"] = "/tmp"
        #expect(
            F.rejection(F.torrent(info: info))
                == .unsafePath(field: "info.name", path: ["/tmp"], reason: .absolute))
        let deep = BencodeValue.list(Array(repeating: "d", count: 65))
        #expect(
            F.rejection(F.torrent(info: F.v1MultiInfo(paths: [deep])))
                == .unsafePath(
                    field: "info.files[0].path", path: Array(repeating: "d", count: 64),
                    reason: .tooManyComponents(count: 65)))
    }

    @Test func pathsThatCollide() {
        #expect(
            F.rejection(F.torrent(info: F.v1MultiInfo(paths: [["a"], ["a"]])))
                == .unsafePath(field: "info.files", path: ["top", "a"], reason: .conflictsWithAnotherFile))
        #expect(
            F.rejection(F.torrent(info: F.v1MultiInfo(paths: [["a"], ["a", "b"]])))
                == .unsafePath(
                    field: "info.files", path: ["top", "a", "b"], reason: .conflictsWithAnotherFile))
    }

    @Test func hostileSymlinkTarget() {
        var info = F.v1MultiInfo(paths: [["a"]])
        info["files"] = [
            ["length": 1000, "path": ["a"]], ["attr": "l", "path": ["link"], "symlink path": ["..", "x"]],
        ]
        #expect(
            F.rejection(F.torrent(info: info))
                == .unsafePath(field: "info.files[1].symlink path", path: [".."], reason: .parentDirectory))
    }

    @Test func newerMetaVersionIsReportedFirst() {
        var info = F.v1Info()
        info["meta version"] = 3
        info["name"] = nil  // would also be an error, but the version is checked first
        #expect(F.rejection(F.torrent(info: info)) == .unsupportedMetaVersion(3))
    }

    // MARK: v2

    func v2Torrent() throws -> [UInt8] {
        try Fixtures.builder(
            name: "t",
            files: [(["big"], Fixtures.content(length: 40_000, seed: 1)), (["small"], [1, 2, 3])],
            pieceLength: 16384, format: .v2
        ).build()
    }

    func editTree(
        _ bytes: [UInt8], _ change: @escaping (inout [BencodeKey: BencodeValue]) -> Void
    ) throws -> [UInt8] {
        try F.mutate(bytes) { top in
            F.editInfo(&top) { info in
                guard case .dictionary(var tree) = info["file tree"] else { return }
                change(&tree)
                info["file tree"] = .dictionary(tree)
            }
        }
    }

    @Test func v2FixtureIsValid() throws {
        #expect(try Metainfo(bytes: v2Torrent()).version == .v2)
    }

    @Test func malformedFileTrees() throws {
        let bytes = try v2Torrent()
        #expect(
            F.rejection(try editTree(bytes) { $0[""] = ["length": 5] })
                == .invalidFileTree(path: [], reason: .rootIsFile))
        #expect(
            F.rejection(
                try editTree(bytes) {
                    $0["small"] = [
                        "": ["length": 3, "pieces root": .bytes(Array(repeating: 1, count: 32))], "x": [:],
                    ]
                })
                == .invalidFileTree(path: ["small"], reason: .fileHasSiblings))
        #expect(
            F.rejection(try editTree(bytes) { $0["small"] = ["": ["length": 3]] })
                == .invalidFileTree(path: ["small"], reason: .invalidPiecesRoot))
        #expect(
            F.rejection(
                try editTree(bytes) {
                    $0["small"] = ["": ["length": 3, "pieces root": .bytes(Array(repeating: 1, count: 31))]]
                })
                == .invalidFileTree(path: ["small"], reason: .invalidPiecesRoot))
        #expect(
            F.rejection(try editTree(bytes) { $0["small"] = 7 })
                == .invalidFileTree(path: ["small"], reason: .notADictionary))
        #expect(
            F.rejection(try editTree(bytes) { $0[".."] = $0["small"] })
                == .unsafePath(field: "info.file tree", path: [".."], reason: .parentDirectory))
        #expect(
            F.rejection(try editTree(bytes) { $0 = [:] }) == .invalidFileTree(path: [], reason: .noFiles))
    }

    @Test func pieceLayersMustMatchTheirRoots() throws {
        let bytes = try v2Torrent()
        let torrent = try Metainfo(bytes: bytes)
        let bigRoot = try #require(torrent.files.first { $0.path == ["t", "big"] }?.piecesRoot)
        let key = BencodeKey(bigRoot.bytes)
        let goodLayer = try #require(torrent.pieceLayer(ofFile: 0)).flatMap(\.bytes)

        var tampered = goodLayer
        tampered[5] ^= 1
        #expect(
            F.rejection(try F.mutate(bytes) { $0["piece layers"] = .dictionary([key: .bytes(tampered)]) })
                == .pieceLayerRootMismatch(path: ["big"]))
        #expect(
            F.rejection(
                try F.mutate(bytes) {
                    $0["piece layers"] = .dictionary([key: .bytes(Array(goodLayer.dropLast(32)))])
                })
                == .invalidPieceLayerLength(path: ["big"], byteCount: 64, expected: 96))
        #expect(
            F.rejection(try F.mutate(bytes) { $0["piece layers"] = .dictionary([:]) })
                == .missingPieceLayer(path: ["big"]))
        #expect(
            F.rejection(try F.mutate(bytes) { $0["piece layers"] = nil }) == .missingField("piece layers"))
        #expect(
            F.rejection(try F.mutate(bytes) { $0["piece layers"] = .dictionary([key: 5]) })
                == .wrongType(field: "piece layers", expected: .byteString))
    }

    // MARK: hybrid

    func hybridTorrent() throws -> [UInt8] {
        try Fixtures.builder(
            name: "h",
            files: [
                (["a"], Fixtures.content(length: 20_000, seed: 1)),
                (["b"], Fixtures.content(length: 10_000, seed: 2)),
            ],
            pieceLength: 16384, format: .hybrid
        ).build()
    }

    /// Replaces the v1 file list and resizes `pieces` to match it, so that only the hybrid check fails.
    func withV1Files(_ bytes: [UInt8], _ files: [BencodeValue]) throws -> [UInt8] {
        try F.mutate(bytes) { top in
            F.editInfo(&top) { info in
                let total = files.reduce(Int64(0)) { $0 + ($1[BencodeKey("length")]?.integer ?? 0) }
                info["files"] = .list(files)
                info["pieces"] = .bytes([UInt8](repeating: 7, count: Int((total + 16383) / 16384) * 20))
            }
        }
    }

    @Test func hybridFixtureIsValid() throws {
        let torrent = try Metainfo(bytes: hybridTorrent())
        #expect(torrent.version == .hybrid)
        #expect(torrent.files.count == 3)
    }

    @Test func hybridViewsMustAgree() throws {
        let bytes = try hybridTorrent()
        let pad: BencodeValue = ["attr": "p", "length": 12768, "path": [".pad", "12768"]]
        let a: BencodeValue = ["length": 20000, "path": ["a"]]
        let b: BencodeValue = ["length": 10000, "path": ["b"]]
        #expect(F.rejection(try withV1Files(bytes, [a, pad, b])) == nil)
        #expect(F.rejection(try withV1Files(bytes, [a, b])) == .hybridMismatch(.misaligned(index: 1)))
        #expect(
            F.rejection(try withV1Files(bytes, [a, pad])) == .hybridMismatch(.fileCountDiffers(v1: 1, v2: 2)))
        #expect(
            F.rejection(try withV1Files(bytes, [a, pad, ["length": 10000, "path": ["c"]]]))
                == .hybridMismatch(.pathDiffers(index: 1)))
        #expect(
            F.rejection(try withV1Files(bytes, [a, pad, ["length": 9999, "path": ["b"]]]))
                == .hybridMismatch(.lengthDiffers(index: 1)))
        #expect(
            F.rejection(try withV1Files(bytes, [b, pad, a])) == .hybridMismatch(.pathDiffers(index: 0)))
        // Extra whole pieces of padding keep files aligned but shift v1 piece indices away from v2's.
        let bigPad: BencodeValue = ["attr": "p", "length": 29152, "path": [".pad", "29152"]]
        #expect(
            F.rejection(try withV1Files(bytes, [a, bigPad, b])) == .hybridMismatch(.misaligned(index: 1)))
        // The same name spelled with another Unicode normalization is a different file name on Linux.
        let composed = try Fixtures.builder(
            name: "h", files: [(["\u{e9}"], Fixtures.content(length: 100, seed: 1)), (["z"], [1])],
            pieceLength: 16384,
            format: .hybrid
        ).build()
        let decomposed: BencodeValue = ["length": 100, "path": ["e\u{301}"]]
        let z: BencodeValue = ["length": 1, "path": ["z"]]
        // File-tree order puts "z" (0x7a) before "é" (0xc3 0xa9).
        let zPad: BencodeValue = ["attr": "p", "length": 16383, "path": [".pad", "16383"]]
        let composedV1: BencodeValue = ["length": 100, "path": ["\u{e9}"]]
        #expect(F.rejection(try withV1Files(composed, [z, zPad, composedV1])) == nil)
        #expect(
            F.rejection(try withV1Files(composed, [z, zPad, decomposed]))
                == .hybridMismatch(.pathDiffers(index: 1)))
        let tailPad: BencodeValue = ["attr": "p", "length": 40000, "path": [".pad", "40000"]]
        #expect(
            F.rejection(try withV1Files(bytes, [a, pad, b, tailPad]))
                == .hybridMismatch(.pieceCountDiffers(v1: 6, v2: 3)))
    }
}

/// Damaged copies of valid torrents: every one is either rejected with an error or parsed, never a trap.
@Suite struct DamagedTorrentTests {
    func samples() throws -> [[UInt8]] {
        let files: [([String], [UInt8])] = [
            (["a"], Fixtures.content(length: 40_000, seed: 1)),
            (["d", "b"], Fixtures.content(length: 3, seed: 2)),
        ]
        return try [TorrentBuilder.Format.v1, .v2, .hybrid].map { format in
            var builder = try Fixtures.builder(name: "s", files: files, pieceLength: 16384, format: format)
            builder.trackers = [["http://t/"]]
            return try builder.build()
        }
    }

    @Test func everyTruncationIsRejected() throws {
        for sample in try samples() {
            for cut in 0..<sample.count {
                #expect(throws: MetainfoError.self) { try Metainfo(bytes: Array(sample[..<cut])) }
            }
        }
    }

    @Test func randomByteChangesNeverTrap() throws {
        var rng = SeededGenerator(seed: 99)
        var accepted = 0
        for sample in try samples() {
            for _ in 0..<300 {
                var bytes = sample
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(
                        in: 0...255, using: &rng)
                }
                if let torrent = try? Metainfo(bytes: bytes) {
                    accepted += 1
                    // Whatever is accepted still satisfies the layout invariants the engine relies on.
                    #expect(torrent.files.reduce(0) { $0 + $1.length } == torrent.totalLength)
                }
            }
        }
        // Changes inside hashes and names keep a torrent valid; the test must have seen some of each.
        #expect(accepted > 0)
    }
}
