import Hashing
import Testing
import TorrentModel

@testable import Metainfo

@Suite struct MagnetLinkTests {
    let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    var hash: InfoHash? { Hex.decode(hex).flatMap { InfoHash($0) } }
    let v2Hex = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"

    @Test func bep9HexLinkWithNameTrackersAndPeers() throws {
        let link = try MagnetLink(
            parsing: "magnet:?xt=urn:btih:\(hex)&dn=Some+Name%21&tr=udp%3A%2F%2Ftracker.example%3A6969"
                + "&tr=http://b.example/announce&x.pe=10.0.0.1:6881&x.pe=[2001:db8::1]:51413&x.pe=peer.example:80"
                + "&ws=http%3A%2F%2Fseed.example%2F")
        #expect(link.infoHashV1 == hash)
        #expect(link.infoHashV2 == nil)
        #expect(link.displayName == "Some Name!")
        #expect(link.trackers == ["udp://tracker.example:6969", "http://b.example/announce"])
        #expect(link.webSeeds == ["http://seed.example/"])
        #expect(
            link.peers == [
                MagnetPeer(host: "10.0.0.1", port: 6881), MagnetPeer(host: "2001:db8::1", port: 51413),
                MagnetPeer(host: "peer.example", port: 80),
            ])
    }

    @Test func upperCaseHexAndBase32InfoHashes() throws {
        #expect(try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hex.uppercased())").infoHashV1 == hash)
        let base32 = Base32.encode(try #require(hash).bytes)
        #expect(base32.count == 32)
        #expect(try MagnetLink(parsing: "magnet:?xt=urn:btih:\(base32)").infoHashV1 == hash)
        #expect(try MagnetLink(parsing: "magnet:?xt=urn:btih:\(base32.lowercased())").infoHashV1 == hash)
    }

    @Test func base32MatchesRFC4648Vectors() {
        // RFC 4648 section 10, for inputs whose length needs no '=' padding.
        #expect(Base32.decode("MZXW6YTB") == Array("fooba".utf8))
        #expect(Base32.encode(Array("fooba".utf8)) == "MZXW6YTB")
        #expect(Base32.decode("") == [])
        #expect(Base32.decode("MZXW6YT") == nil)
        #expect(Base32.decode("MZXW6YT1") == nil)
        #expect(Base32.decode(String(repeating: "A", count: 32)) == [UInt8](repeating: 0, count: 20))
    }

    @Test func v2AndHybridLinks() throws {
        let v2 = try MagnetLink(parsing: "magnet:?xt=urn:btmh:1220\(v2Hex)&dn=x")
        #expect(v2.infoHashV2.map { Hex.encode($0.bytes) } == v2Hex)
        #expect(v2.infoHashV1 == nil)
        let hybrid = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hex)&xt=urn:btmh:1220\(v2Hex)")
        #expect(hybrid.infoHashV1 == hash)
        #expect(hybrid.infoHashV2.map { Hex.encode($0.bytes) } == v2Hex)
    }

    @Test func selectOnly() throws {
        let link = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hex)&so=0,2,4-6")
        #expect(link.selectedFiles == [0...0, 2...2, 4...6])
    }

    /// Regression: producing the `so` parameter asked each range for its `count`, which overflows for
    /// `0-9223372036854775807`.
    @Test func hugeSelectOnlyRangesDoNotTrap() throws {
        let link = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hex)&so=0-9223372036854775807,5")
        #expect(link.selectedFiles == [0...Int.max, 5...5])
        #expect(link.uri.hasSuffix("&so=0-9223372036854775807,5"))
    }

    @Test func producedLinksParseBack() throws {
        let link = MagnetLink(
            infoHashV1: hash, infoHashV2: SHA256Digest(bytes: Hex.decode(v2Hex) ?? []),
            displayName: "a b&c=d/é+",
            trackers: ["udp://t.example:1337/announce?x=1&y=2"], webSeeds: ["http://w.example/a b"],
            peers: [MagnetPeer(host: "::1", port: 1), MagnetPeer(host: "h", port: 2)],
            selectedFiles: [1...1, 3...5])
        let uri = link.uri
        #expect(
            uri.hasPrefix("magnet:?xt=urn:btih:\(hex)&xt=urn:btmh:1220\(v2Hex)&dn=a%20b%26c%3Dd%2F%C3%A9%2B&")
        )
        #expect(try MagnetLink(parsing: uri) == link)
    }

    @Test func metainfoProducesItsLink() throws {
        var builder = try Fixtures.builder(
            name: "n", files: [(["n"], Fixtures.content(length: 1000, seed: 1))], pieceLength: 16384,
            format: .hybrid)
        builder.trackers = [["http://a.example/"], ["http://b.example/"]]
        builder.webSeeds = ["http://w.example/"]
        let torrent = try Metainfo(bytes: builder.build())
        let link = try MagnetLink(parsing: torrent.magnetLink.uri)
        #expect(link.infoHashV1 == torrent.infoHashV1)
        #expect(link.infoHashV2 == torrent.infoHashV2)
        #expect(link.displayName == "n")
        #expect(link.trackers == ["http://a.example/", "http://b.example/"])
        #expect(link.webSeeds == ["http://w.example/"])
    }

    /// A hybrid's info dictionary fetched through its magnet link (BEP 9 brings no piece layers) makes
    /// a usable torrent even when a file spans pieces: a hybrid is checked by its SHA-1 hashes. It
    /// was refused for want of "piece layers", so such magnet links never started downloading.
    @Test func aHybridFromItsInfoDictionaryAloneIsUsable() throws {
        let builder = try Fixtures.builder(
            name: "n", files: [(["n"], Fixtures.content(length: 100_000, seed: 2))], pieceLength: 16384,
            format: .hybrid)
        let full = try Metainfo(bytes: builder.build())
        #expect(full.hasPieceLayers)
        let link = try MagnetLink(parsing: full.magnetLink.uri)
        let fetched = try Metainfo(bytes: link.torrentFile(infoDictionary: Array(full.infoBytes)))
        #expect(fetched.infoHashV1 == full.infoHashV1 && fetched.infoHashV2 == full.infoHashV2)
        #expect(!fetched.hasPieceLayers && fetched.pieceLayer(ofFile: 0) == nil)
        #expect(fetched.pieceCount == full.pieceCount)
    }

    struct MalformedLink: Sendable, CustomStringConvertible {
        let text: String
        let error: MagnetError
        var description: String { text }
    }

    static let malformedLinks: [MalformedLink] = [
        MalformedLink(text: "http://example.com/?xt=urn:btih:x", error: .notAMagnetLink),
        MalformedLink(text: "magnet:?dn=x", error: .missingInfoHash),
        MalformedLink(text: "magnet:?xt=urn:sha1:ABCDEF", error: .missingInfoHash),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88",
            error: .invalidInfoHash("urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:g12fe1c06bba254a9dc9f519b335aa7c1367a88a",
            error: .invalidInfoHash("urn:btih:g12fe1c06bba254a9dc9f519b335aa7c1367a88a")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:1BCDEFGHIJKLMNOPQRSTUVWXYZ234567",
            error: .invalidInfoHash("urn:btih:1BCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
        MalformedLink(
            text: "magnet:?xt=urn:btmh:1120" + String(repeating: "0", count: 64),
            error: .invalidInfoHash("urn:btmh:1120" + String(repeating: "0", count: 64))),
        MalformedLink(
            text: "magnet:?xt=urn:btmh:1220" + String(repeating: "0", count: 62),
            error: .invalidInfoHash("urn:btmh:1220" + String(repeating: "0", count: 62))),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&xt=urn:btih:"
                + String(repeating: "0", count: 40), error: .conflictingInfoHashes),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=%G1",
            error: .invalidPercentEncoding("%G1")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=%4",
            error: .invalidPercentEncoding("%4")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=%FF",
            error: .invalidUTF8(parameter: "dn")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&x.pe=1.2.3.4",
            error: .invalidPeerAddress("1.2.3.4")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&x.pe=1.2.3.4:0",
            error: .invalidPeerAddress("1.2.3.4:0")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&x.pe=1.2.3.4:70000",
            error: .invalidPeerAddress("1.2.3.4:70000")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&x.pe=::1:80",
            error: .invalidPeerAddress("::1:80")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=3-1",
            error: .invalidSelectOnly("3-1")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=a",
            error: .invalidSelectOnly("a")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=1,,2",
            error: .invalidSelectOnly("1,,2")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=-1",
            error: .invalidSelectOnly("-1")),
        MalformedLink(
            text: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&bogus",
            error: .malformedParameter("bogus")),
    ]

    @Test(arguments: malformedLinks)
    func malformedLink(_ link: MalformedLink) {
        #expect(throws: link.error) { try MagnetLink(parsing: link.text) }
    }
}
