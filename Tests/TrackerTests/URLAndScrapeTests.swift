import Bencode
import Testing
import TorrentModel

@testable import Tracker

@Suite struct TrackerURLTests {
    @Test func httpWithDefaultPortAndQuery() throws {
        let parsed = try TrackerURL("HTTP://Tracker.Example.ORG/announce?passkey=1#frag")
        #expect(parsed.scheme == .http)
        #expect(parsed.host == .name("tracker.example.org"))
        #expect(parsed.port == 80)
        #expect(parsed.path == "/announce")
        #expect(parsed.query == "passkey=1")
        #expect(parsed.requestTarget == "/announce?passkey=1")
        #expect(parsed.hostHeader == "tracker.example.org")
        #expect(!parsed.requiresTLS)
    }

    @Test func httpsNeedsTLSAndKeepsAnExplicitPort() throws {
        let parsed = try TrackerURL("https://t.example:8443")
        #expect(parsed.requiresTLS)
        #expect(parsed.port == 8443)
        #expect(parsed.path == "/")
        #expect(parsed.query == nil)
        #expect(parsed.hostHeader == "t.example:8443")
        #expect(try TrackerURL("https://t.example:443/a").hostHeader == "t.example")
    }

    @Test func ipLiterals() throws {
        let v6 = try TrackerURL("http://[2001:DB8:0:0:0:0:0:1]:6969/announce")
        #expect(v6.host == .ipv6(IPv6Address(high: 0x2001_0db8_0000_0000, low: 1)))
        #expect(v6.hostHeader == "[2001:db8::1]:6969")
        #expect(v6.description == "http://[2001:db8::1]:6969/announce")
        let v6DefaultPort = try TrackerURL("http://[::1]/a")
        #expect(v6DefaultPort.hostHeader == "[::1]")
        let v4 = try TrackerURL("udp://10.0.0.1:1337/announce")
        #expect(v4.host == .ipv4(IPv4Address(0x0a00_0001)))
        #expect(v4.port == 1337)
    }

    @Test func refusals() {
        func problem(_ text: String) -> URLProblem? {
            guard case .invalidURL(_, let problem) = trackerError({ try TrackerURL(text) }) else {
                return nil
            }
            return problem
        }
        #expect(problem("wss://t.example/a") == .unsupportedScheme("wss"))
        #expect(problem("t.example/announce") == .unsupportedScheme(""))
        #expect(problem("http:///announce") == .missingHost)
        #expect(problem("udp://t.example/announce") == .invalidPort(""))
        #expect(problem("http://t.example:0/") == .invalidPort("0"))
        #expect(problem("http://t.example:65536/") == .invalidPort("65536"))
        #expect(problem("http://t.example:8x/") == .invalidPort("8x"))
        #expect(problem("http://user:pw@t.example/") == .userInfoNotAllowed)
        #expect(problem("http://t.example/a b") == .forbiddenCharacter(0x20))
        #expect(problem("http://t.example/a\r\nX: y") == .forbiddenCharacter(0x0d))
        #expect(problem("http://[::1/") == .invalidHost("[::1"))
        #expect(problem("http://[1:2:3]/") == .invalidHost("1:2:3"))
        #expect(problem("http://bad!host/") == .invalidHost("bad!host"))
        #expect(
            problem("http://t.example/" + String(repeating: "a", count: 5000))
                == .tooLong(byteCount: 5017, limit: 4096))
    }

    @Test func ipv6TextForms() {
        #expect(IPv6Address("::")?.description == "::")
        #expect(IPv6Address("::ffff:1.2.3.4") == IPv6Address(high: 0, low: 0x0000_ffff_0102_0304))
        #expect(IPv6Address("1:0:0:2:0:0:0:3")?.description == "1:0:0:2::3")
        #expect(IPv6Address("1:2:3:4:5:6:7:8")?.description == "1:2:3:4:5:6:7:8")
        #expect(IPv6Address("1::2::3") == nil)
        #expect(IPv6Address("1:2:3:4:5:6:7:8:9") == nil)
        #expect(IPv6Address("12345::") == nil)
        #expect(IPv6Address("1.2.3.4::") == nil)
        #expect(IPv4Address("01.2.3.4") == nil)
        #expect(IPv4Address("1.2.3.256") == nil)
        #expect(IPv4Address("1.2.3") == nil)
    }

    @Test func redirectResolution() throws {
        let base = url("http://t.example:8080/dir/announce?x=1")
        #expect(try base.resolving("https://other.example/a").description == "https://other.example/a")
        #expect(try base.resolving("//cdn.example/b?q").description == "http://cdn.example/b?q")
        #expect(try base.resolving("/root?y=2").description == "http://t.example:8080/root?y=2")
        #expect(try base.resolving("?z=3").description == "http://t.example:8080/dir/announce?z=3")
        #expect(try base.resolving("other?k").description == "http://t.example:8080/dir/other?k")
        #expect(
            trackerError { try base.resolving("ftp://x/") }
                == .invalidRedirect(location: "ftp://x/", problem: .unsupportedScheme("ftp")))
    }
}

/// BEP 48 scrape over HTTP.
@Suite struct ScrapeTests {
    @Test func scrapeURLReplacesAnnounceInTheLastSegment() throws {
        let cases: [(String, String?)] = [
            ("http://example.com/announce", "http://example.com/scrape"),
            ("http://example.com/x/announce", "http://example.com/x/scrape"),
            ("http://example.com/announce.php", "http://example.com/scrape.php"),
            ("http://example.com/a/announce?x2%0644", "http://example.com/a/scrape?x2%0644"),
            ("https://example.com:8443/announce?passkey=k", "https://example.com:8443/scrape?passkey=k"),
            ("http://example.com/a", nil),
            ("http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"),
            ("http://example.com/x%064announce", nil),
            ("http://example.com/announce/x", nil),
        ]
        for (announce, expected) in cases {
            let derived = try? Scrape.url(announce: url(announce)).description
            #expect(derived == expected, "\(announce)")
        }
        #expect(
            trackerError { try Scrape.url(announce: url("http://example.com/a")) }
                == .scrapeNotSupported(url: "http://example.com/a"))
        #expect(
            trackerError { try Scrape.url(announce: url("udp://example.com:80/announce")) }
                == .wrongTransport(url: "udp://example.com:80/announce"))
    }

    @Test func requestCarriesEveryInfoHash() throws {
        let request = try Scrape.requestURL(
            announce: url("http://tracker/announce?k=1"),
            infoHashes: [repeated20("x"), id20("00112233445566778899aabbccddeeff00010203")])
        #expect(
            request.requestTarget
                == "/scrape?k=1&info_hash=xxxxxxxxxxxxxxxxxxxx"
                + "&info_hash=%00%11%223DUfw%88%99%AA%BB%CC%DD%EE%FF%00%01%02%03")
    }

    @Test func bep48ExampleResponse() throws {
        let body = ascii(
            "d5:filesd"
                + "20:xxxxxxxxxxxxxxxxxxxxd8:completei11e10:downloadedi13772e10:incompletei19ee"
                + "20:yyyyyyyyyyyyyyyyyyyyd8:completei21e10:downloadedi206e10:incompletei20ee"
                + "20:zzzzzzzzzzzzzzzzzzzzd8:completei14e10:downloadedi12191e10:incompletei9ee"
                + "ee")
        let entries = try Scrape.parseResponse(body)
        #expect(
            entries == [
                ScrapeEntry(
                    infoHash: repeated20("x"), seederCount: 11, completedCount: 13772, leecherCount: 19),
                ScrapeEntry(
                    infoHash: repeated20("y"), seederCount: 21, completedCount: 206, leecherCount: 20),
                ScrapeEntry(
                    infoHash: repeated20("z"), seederCount: 14, completedCount: 12191, leecherCount: 9),
            ])
    }

    @Test func hostileScrapeResponses() {
        func parse(_ value: BencodeValue, limits: TrackerLimits = TrackerLimits()) -> TrackerError? {
            trackerError { try Scrape.parseResponse(value.encoded(), limits: limits) }
        }
        let stats: BencodeValue = ["complete": 1, "downloaded": 2, "incomplete": 3]
        #expect(parse(["failure_reason": "no scrape"]) == .trackerFailure(reason: "no scrape"))
        #expect(parse(["failure reason": "no"]) == .trackerFailure(reason: "no"))
        #expect(parse([:]) == .missingKey("files"))
        #expect(parse(["files": []]) == .wrongType(key: "files", expected: .dictionary, found: .list))
        #expect(parse(["files": ["short": stats]]) == .invalidInfoHashKey(byteCount: 5))
        #expect(
            parse(["files": [BencodeKey(repeated20("a").bytes): 5]])
                == .notADictionary(context: "scrape entry \(repeated20("a"))"))
        #expect(
            parse(["files": [BencodeKey(repeated20("a").bytes): ["complete": -1]]])
                == .valueOutOfRange(key: "complete", value: -1))
        let three: BencodeValue = .dictionary(
            Dictionary(
                uniqueKeysWithValues: ["a", "b", "c"].map {
                    (BencodeKey(repeated20(Character($0)).bytes), stats)
                }))
        #expect(
            parse(["files": three], limits: TrackerLimits(maxScrapeEntryCount: 2))
                == .tooManyScrapeEntries(count: 3, limit: 2))
        #expect(parse(["files": three]) == nil)
    }
}

@Suite struct PeerIdentityTests {
    @Test func peerIDHasThePrefixAndTwelveSeededBytes() {
        var first = SeededRandom(seed: 7)
        var again = SeededRandom(seed: 7)
        var other = SeededRandom(seed: 8)
        let id = PeerIdentity.makePeerID(using: &first)
        #expect(Array(id.bytes.prefix(8)) == ascii("-PO0001-"))
        #expect(id == PeerIdentity.makePeerID(using: &again))
        #expect(id != PeerIdentity.makePeerID(using: &other))
        #expect(id != PeerIdentity.makePeerID(using: &first))
    }

    @Test func keysDifferAcrossDrawsAndReplayFromTheSeed() {
        var random = SeededRandom(seed: 1)
        var replay = SeededRandom(seed: 1)
        let keys = (0..<8).map { _ in PeerIdentity.makeKey(using: &random) }
        #expect(Set(keys).count == 8)
        #expect(keys == (0..<8).map { _ in PeerIdentity.makeKey(using: &replay) })
    }
}
