import Bencode
import Hashing
import Testing
import TorrentModel

@testable import Metainfo

/// The examples the BEPs give for metainfo and magnet links.
@Suite struct SpecExampleTests {
    /// BEP 52's "Bencoded for fileA only" example, with its `5:length` corrected to `6:length` (as printed
    /// the key would be "lengt"), wrapped in the other keys an info dictionary needs.
    @Test func bep52FileTreeExample() throws {
        let root = String(repeating: "a", count: 32)
        let info =
            "d9:file treed4:dir1d4:dir2d9:fileA.txtd0:d6:lengthi1024e11:pieces root32:\(root)eeeee"
            + "12:meta versioni2e4:name4:test12:piece lengthi16384ee"
        let torrent = try Metainfo(infoDictionary: Array(info.utf8))
        #expect(torrent.version == .v2)
        #expect(torrent.files.map(\.path) == [["test", "dir1", "dir2", "fileA.txt"], [".pad", "15360"]])
        #expect(torrent.files[0].length == 1024)
        #expect(torrent.files[0].piecesRoot?.bytes == Array(root.utf8))
        #expect(torrent.infoHashV2 == SHA256.hash(Array(info.utf8)))
        // Metadata from peers carries no piece layers; a one-piece file needs none anyway.
        #expect(!torrent.hasPieceLayers)
        #expect(torrent.v2PieceHash(PieceIndex(0))?.hash == torrent.files[0].piecesRoot)
    }

    @Test func bareV2InfoHasNoLayersForLongFiles() throws {
        let bytes = try Fixtures.builder(
            name: "n", files: [(["n"], Fixtures.content(length: 40_000, seed: 3))], pieceLength: 16384,
            format: .v2
        ).build()
        let full = try Metainfo(bytes: bytes)
        let bare = try Metainfo(infoDictionary: Array(full.infoBytes))
        #expect(bare.infoHashV2 == full.infoHashV2)
        #expect(full.v2PieceHash(PieceIndex(1)) != nil)
        #expect(bare.v2PieceHash(PieceIndex(1)) == nil)
        #expect(bare.pieceLayer(ofFile: 0) == nil)
    }

    @Test func v1PieceHashesAreExposedFlat() throws {
        let bytes = Fixtures.torrent(info: Fixtures.v1Info(length: 40_000))
        let torrent = try Metainfo(bytes: bytes)
        #expect(torrent.v1PieceHashBytes.map(Array.init) == [UInt8](repeating: 0xab, count: 60))
        #expect(torrent.pieceHash(PieceIndex(2))?.bytes == [UInt8](repeating: 0xab, count: 20))
    }

    @Test func bep12AnnounceIsIgnoredWhenAnnounceListIsPresent() throws {
        let info = Fixtures.v1Info()
        let withList = try Metainfo(
            bytes: Fixtures.torrent(
                info: info,
                extra: [
                    "announce": "http://a/",
                    "announce-list": [["http://b/", "http://c/"], [], ["udp://d/"]],
                ]))
        #expect(withList.trackers == [["http://b/", "http://c/"], ["udp://d/"]])
        let alone = try Metainfo(bytes: Fixtures.torrent(info: info, extra: ["announce": "http://a/"]))
        #expect(alone.trackers == [["http://a/"]])
    }

    @Test func bep19UrlListMayBeAStringOrAList() throws {
        let info = Fixtures.v1Info()
        #expect(
            try Metainfo(bytes: Fixtures.torrent(info: info, extra: ["url-list": "http://w/"])).webSeeds == [
                "http://w/"
            ])
        #expect(
            try Metainfo(
                bytes: Fixtures.torrent(info: info, extra: ["url-list": ["http://w/", "http://x/"]])
            ).webSeeds
                == ["http://w/", "http://x/"])
    }

    @Test func bep27PrivateFlagLivesInTheInfoDictionary() throws {
        var info = Fixtures.v1Info()
        info["private"] = 1
        #expect(try Metainfo(bytes: Fixtures.torrent(info: info)).isPrivate)
        info["private"] = 0
        #expect(try !Metainfo(bytes: Fixtures.torrent(info: info)).isPrivate)
        // Outside the info dictionary it would not change the infohash, so it does not count.
        #expect(
            try !Metainfo(bytes: Fixtures.torrent(info: Fixtures.v1Info(), extra: ["private": 1])).isPrivate)
    }

    @Test func bep47AttributesAndPaddingWithoutPath() throws {
        var info = Fixtures.v1MultiInfo(paths: [["a"]])
        info["files"] = [
            ["attr": "xh", "length": 1000, "path": ["a"]],
            ["attr": "p", "length": 15384],
            ["attr": "l", "path": ["link"], "symlink path": ["a"]],
            ["length": 10, "path": ["b"]],
        ]
        info["pieces"] = .bytes([UInt8](repeating: 1, count: 40))
        let torrent = try Metainfo(bytes: Fixtures.torrent(info: info))
        #expect(torrent.files.map(\.attributes) == [[.executable, .hidden], [.padding], [.symlink], []])
        #expect(torrent.files[1].path == ["top", ".pad", "15384"])
        #expect(torrent.files[2].symlinkTarget == ["a"])
        #expect(torrent.files[2].length == 0)
        #expect(torrent.files[3].offset == 16384)
    }

    @Test func magnetSchemeIsCaseInsensitiveButPortsAreDigits() throws {
        let hex = String(repeating: "ab", count: 20)
        #expect(try MagnetLink(parsing: "MAGNET:?xt=urn:btih:\(hex)").infoHashV1 != nil)
        #expect(throws: MagnetError.invalidPeerAddress("h:+80")) {
            try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hex)&x.pe=h:%2B80")
        }
        #expect(throws: MagnetError.notAMagnetLink) {
            try MagnetLink(parsing: "magnet\u{1a}?xt=urn:btih:\(hex)")
        }
    }
}
