import Testing
import TorrentModel

@testable import LocalDiscovery

/// BEP 14's message format: encoding, and strict, bounded decoding.
@Suite struct LocalDiscoveryAnnounceTests {
    static let first = InfoHash(hex: "c12fe1c06bba254a9dc9f519b335aa7c1367a88a")!
    static let second = InfoHash(hex: "0123456789abcdef0123456789abcdef01234567")!

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The BEP's format with one infohash and a cookie, byte for byte (libtorrent's order of headers).
    @Test func encodesTheBEPFormat() {
        let announce = LocalDiscoveryAnnounce(port: 6881, infoHashes: [Self.first], cookie: "5a3c")
        #expect(
            announce.encoded()
                == Self.bytes(
                    "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n"
                        + "Infohash: c12fe1c06bba254a9dc9f519b335aa7c1367a88a\r\ncookie: 5a3c\r\n\r\n\r\n"))
    }

    /// BEP 14's IPv6 group in the `Host` header, the rest as over IPv4.
    @Test func namesTheIPv6GroupOverIPv6() throws {
        let announce = LocalDiscoveryAnnounce(port: 6881, infoHashes: [Self.first], cookie: "5a3c")
        #expect(
            announce.encoded(ipv6: true)
                == Self.bytes(
                    "BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:988f]:6771\r\nPort: 6881\r\n"
                        + "Infohash: c12fe1c06bba254a9dc9f519b335aa7c1367a88a\r\ncookie: 5a3c\r\n\r\n\r\n"))
        #expect(try LocalDiscoveryAnnounce(decoding: announce.encoded(ipv6: true)) == announce)
    }

    @Test func roundTripsSeveralInfoHashes() throws {
        let announce = LocalDiscoveryAnnounce(
            port: 51413, infoHashes: [Self.first, Self.second], cookie: "x")
        #expect(try LocalDiscoveryAnnounce(decoding: announce.encoded()) == announce)
    }

    /// What Transmission sends: upper-case hex, no cookie; and header names in any case.
    @Test func decodesOtherClientsSpelling() throws {
        let announce = try LocalDiscoveryAnnounce(
            decoding: Self.bytes(
                "BT-SEARCH * HTTP/1.1\r\nHOST: 239.192.152.143:6771\r\nport:6881\r\n"
                    + "INFOHASH:  C12FE1C06BBA254A9DC9F519B335AA7C1367A88A \r\nX-Other: y\r\n\r\n\r\n"))
        #expect(announce == LocalDiscoveryAnnounce(port: 6881, infoHashes: [Self.first], cookie: nil))
    }

    @Test func bareLineFeedsAreTaken() throws {
        let announce = try LocalDiscoveryAnnounce(
            decoding: Self.bytes("BT-SEARCH * HTTP/1.1\nPort: 1\nInfohash: \(Self.first.hex)\n\n"))
        #expect(announce.port == 1)
    }

    /// A malformed infohash spoils only itself.
    @Test func malformedInfoHashesAreSkipped() throws {
        let announce = try LocalDiscoveryAnnounce(
            decoding: Self.bytes(
                "BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: abc\r\nInfohash: \(Self.second.hex)\r\n"
                    + "Infohash: \(Self.first.hex)zz\r\n\r\n"))
        #expect(announce.infoHashes == [Self.second])
    }

    @Test func refusesWhatIsNotAnAnnounce() {
        let valid = "Port: 6881\r\nInfohash: \(Self.first.hex)\r\n\r\n"
        let cases: [(String, LocalDiscoveryAnnounce.DecodingError)] = [
            ("M-SEARCH * HTTP/1.1\r\n" + valid, .notSearch(firstLine: "M-SEARCH * HTTP/1.1")),
            ("BT-SEARCH / HTTP/1.1\r\n" + valid, .notSearch(firstLine: "BT-SEARCH / HTTP/1.1")),
            ("BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: \(Self.first.hex)\r\n", .unterminated),
            ("\r\n\r\n", .unterminated),
            ("BT-SEARCH * HTTP/1.1\r\nInfohash: \(Self.first.hex)\r\n\r\n", .missingPort),
            ("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: \(Self.first.hex)\r\n\r\n", .invalidPort("0")),
            ("BT-SEARCH * HTTP/1.1\r\nPort: +80\r\nInfohash: \(Self.first.hex)\r\n\r\n", .invalidPort("+80")),
            (
                "BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\nInfohash: \(Self.first.hex)\r\n\r\n",
                .invalidPort("65536")
            ),
            ("BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\n\r\n", .noInfoHash),
        ]
        for (text, error) in cases {
            #expect(throws: error) { try LocalDiscoveryAnnounce(decoding: Self.bytes(text)) }
        }
        #expect(throws: LocalDiscoveryAnnounce.DecodingError.notText) {
            try LocalDiscoveryAnnounce(decoding: Self.bytes("BT-SEARCH * HTTP/1.1\r\n") + [0xff, 0x0a, 0x0a])
        }
    }

    @Test func limitsSizeLinesAndInfoHashes() throws {
        let long = Self.bytes("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n") + Array(repeating: 0x20, count: 1500)
        #expect(throws: LocalDiscoveryAnnounce.DecodingError.tooLong(bytes: long.count)) {
            try LocalDiscoveryAnnounce(decoding: long)
        }
        let manyLines = "BT-SEARCH * HTTP/1.1\r\n" + String(repeating: "a\r\n", count: 60) + "\r\n"
        #expect(throws: LocalDiscoveryAnnounce.DecodingError.unterminated) {
            try LocalDiscoveryAnnounce(decoding: Self.bytes(manyLines))
        }
        let hashes = (0..<40).map { index in InfoHash([UInt8](repeating: UInt8(index + 1), count: 20))! }
        let full = LocalDiscoveryAnnounce(port: 1, infoHashes: Array(hashes.prefix(26))).encoded()
        #expect(try LocalDiscoveryAnnounce(decoding: full).infoHashes == Array(hashes.prefix(26)))
    }

    /// A sender's tighter spelling (bare line feeds, no spaces, no Host header) fits more in a datagram
    /// than ours would: it is taken whole, though our encoding of it is past the size we decode (the
    /// local discovery fuzzer's long run found one with a 1,358-byte cookie, 2026-12-06).
    @Test func aTightlySpelledAnnounceIsTakenThoughOursWouldBeLonger() throws {
        let hashes = (0..<28).map { index in InfoHash([UInt8](repeating: UInt8(index + 1), count: 20))! }
        let tight = "BT-SEARCH * HTTP/1.1\nport:1\n" + hashes.map { "infohash:\($0.hex)\n" }.joined() + "\n"
        #expect(tight.utf8.count <= LocalDiscoveryAnnounce.maximumDecodedBytes)
        let announce = try LocalDiscoveryAnnounce(decoding: Self.bytes(tight))
        #expect(announce.infoHashes == hashes && announce.port == 1)
        #expect(announce.encoded().count > LocalDiscoveryAnnounce.maximumDecodedBytes)

        let cookie = String(repeating: "c", count: 1358)
        let longCookie = "BT-SEARCH * HTTP/1.\ncookie: \(cookie)\nPort: 6881\nInfohash: \(hashes[0].hex)\n\n"
        let withCookie = try LocalDiscoveryAnnounce(decoding: Self.bytes(longCookie))
        #expect(withCookie.cookie == cookie && withCookie.infoHashes == [hashes[0]])
        #expect(withCookie.encoded().count > LocalDiscoveryAnnounce.maximumDecodedBytes)
    }

    /// As many infohashes as the capacity says still fit BEP 14's 1,400 bytes.
    @Test func capacityKeepsMessagesUnder1400Bytes() {
        let capacity = LocalDiscoveryAnnounce.infoHashCapacity(cookie: "0123abcd")
        let hashes = (0..<(capacity + 1)).map { _ in Self.first }
        #expect(
            LocalDiscoveryAnnounce(
                port: 65535, infoHashes: Array(hashes.prefix(capacity)), cookie: "0123abcd"
            )
            .encoded(ipv6: true).count <= LocalDiscoveryAnnounce.maximumEncodedBytes)
        #expect(
            LocalDiscoveryAnnounce(port: 65535, infoHashes: hashes, cookie: "0123abcd").encoded().count
                > LocalDiscoveryAnnounce.maximumEncodedBytes)
    }

    /// Any byte at a time or all at once, a prefix of an announce is never taken for one (no header end).
    @Test func everyPrefixIsRefused() {
        let encoded = LocalDiscoveryAnnounce(port: 6881, infoHashes: [Self.first], cookie: "c").encoded()
        for length in 0..<(encoded.count - 2) {
            #expect((try? LocalDiscoveryAnnounce(decoding: encoded.prefix(length))) == nil)
        }
    }
}
