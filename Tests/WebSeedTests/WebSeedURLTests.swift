import Metainfo
import Testing
import TorrentModel
import Tracker

@testable import WebSeed

@Suite struct WebSeedURLTests {
    /// BEP 19's own examples: a single file's URL is the file, or a folder to add the name to; a
    /// multi-file torrent's is a root folder for the name and the path.
    @Test func bep19FileURLs() {
        #expect(
            WebSeedURL.fileURL(base: "http://mirror.com/file.exe", path: ["file.exe"], isSingleFile: true)
                == "http://mirror.com/file.exe")
        #expect(
            WebSeedURL.fileURL(base: "http://mirror.com/pub/", path: ["file.exe"], isSingleFile: true)
                == "http://mirror.com/pub/file.exe")
        #expect(
            WebSeedURL.fileURL(
                base: "http://mirror.com/pub/", path: ["michael", "Readme.txt"], isSingleFile: false)
                == "http://mirror.com/pub/michael/Readme.txt")
        #expect(
            WebSeedURL.fileURL(
                base: "http://mirror.com/pub", path: ["a b", "ü/", "c%d"], isSingleFile: false)
                == "http://mirror.com/pub/a%20b/%C3%BC%2F/c%25d")
    }

    @Test func httpAndHTTPSAreUsed() {
        #expect((try? WebSeedURL.parse("https://mirror.com/a").get())?.port == 443)
        #expect((try? WebSeedURL.parse("http://mirror.com:8080/a").get())?.port == 8080)
        guard case .failure(.invalid) = WebSeedURL.parse("ftp://mirror.com/a") else {
            Issue.record("ftp accepted")
            return
        }
    }

    @Test func redirectsAreBoundedAndStayOnHTTPOrHTTPS() throws {
        let url = try TrackerURL("http://a.example/pub/x.bin")
        #expect(
            try WebSeedURL.redirect(from: url, to: "/other/x.bin", redirectsSoFar: 0).description
                == "http://a.example/other/x.bin")
        #expect(try WebSeedURL.redirect(from: url, to: "http://b.example:81/y", redirectsSoFar: 4).port == 81)
        #expect(throws: WebSeedError.tooManyRedirects(limit: 5)) {
            try WebSeedURL.redirect(from: url, to: "/again", redirectsSoFar: 5)
        }
        let secure = try WebSeedURL.redirect(from: url, to: "https://b.example/x.bin", redirectsSoFar: 0)
        #expect(secure.scheme == .https && secure.port == 443)
        #expect(
            try WebSeedURL.redirect(from: secure, to: "/y.bin", redirectsSoFar: 1).description
                == "https://b.example/y.bin")
        #expect(
            throws: WebSeedError.invalidRedirect(
                location: "udp://b.example:80/", reason: "udp is not supported")
        ) {
            try WebSeedURL.redirect(from: url, to: "udp://b.example:80/", redirectsSoFar: 0)
        }
    }

    @Test func requestAsksForTheInclusiveRange() throws {
        let url = try TrackerURL("http://127.0.0.1:8080/pub/a%20b")
        let text = String(
            decoding: RangeRequest.get(url, range: 16384..<32768, userAgent: "Potluck/1\r\nX: y"),
            as: UTF8.self)
        #expect(
            text
                == "GET /pub/a%20b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Potluck/1X: y\r\n"
                + "Range: bytes=16384-32767\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n")
        // The scheme's own port is left out of Host, as for https on 443.
        let secure = String(
            decoding: RangeRequest.get(try TrackerURL("https://m.example/a"), range: 0..<1, userAgent: "P"),
            as: UTF8.self)
        #expect(secure.hasPrefix("GET /a HTTP/1.1\r\nHost: m.example\r\n"))
    }

    @Test func backoffDoublesAndHonoursRetryAfter() {
        var backoff = WebSeedBackoff()
        #expect((0..<8).map { _ in backoff.failed() } == [1, 2, 4, 8, 16, 32, 60, 60])
        // A shorter Retry-After does not cut the doubled rest; a longer one lengthens it, up to 300 s.
        #expect(backoff.failed(retryAfterSeconds: 5) == 60)
        #expect(backoff.failed(retryAfterSeconds: 100_000) == 300)
        backoff.succeeded()
        #expect(backoff.failed(retryAfterSeconds: 5) == 5)
        backoff.succeeded()
        #expect(backoff.failed() == 1)
        // "Busy, retry after 0 s" on every answer still backs off.
        backoff.succeeded()
        #expect((0..<7).map { _ in backoff.failed(retryAfterSeconds: 0) } == [1, 2, 4, 8, 16, 32, 60])
    }
}

@Suite struct FetchPlanTests {
    /// Three files of 20 KiB, 4 KiB of padding and 40 KiB, in pieces of 32 KiB with blocks of 16 KiB.
    static let layout: FileLayout = {
        let files = [
            FileEntry(path: ["t", "a"], length: 20_480, offset: 0),
            FileEntry(path: ["t", ".pad", "4096"], length: 4096, offset: 20_480, attributes: .padding),
            FileEntry(path: ["t", "b"], length: 40_960, offset: 24_576),
        ]
        return FileLayout(files: files, geometry: PieceGeometry(totalLength: 65_536, pieceLength: 32_768))
    }()

    @Test func adjacentBlocksJoinAndFilesSplitThem() {
        let geometry = Self.layout.geometry
        let blocks = [
            geometry.block(1, of: PieceIndex(1)), geometry.block(0, of: PieceIndex(0)),
            geometry.block(1, of: PieceIndex(0)),
        ]
        let fetches = FetchPlan.fetches(for: blocks, layout: Self.layout, maxFetchBytes: 1 << 20)
        #expect(
            fetches == [
                PlannedFetch(fileIndex: 0, fileRange: 0..<20_480, payloadOffset: 0, isPadding: false),
                PlannedFetch(fileIndex: 1, fileRange: 0..<4096, payloadOffset: 20_480, isPadding: true),
                PlannedFetch(fileIndex: 2, fileRange: 0..<8192, payloadOffset: 24_576, isPadding: false),
                PlannedFetch(
                    fileIndex: 2, fileRange: 24_576..<40_960, payloadOffset: 49_152, isPadding: false),
            ])
    }

    @Test func runsStopAtTheFetchSize() {
        let geometry = Self.layout.geometry
        let blocks = (0..<2).flatMap { piece in
            (0..<2).map { geometry.block($0, of: PieceIndex(UInt32(piece))) }
        }
        let fetches = FetchPlan.fetches(for: blocks, layout: Self.layout, maxFetchBytes: 32_768)
        #expect(fetches.map(\.payloadOffset) == [0, 20_480, 24_576, 32_768])
        #expect(fetches.map(\.fileRange.count) == [20_480, 4096, 8192, 32_768])
    }
}
