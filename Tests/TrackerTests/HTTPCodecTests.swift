import Testing
import TorrentModel

@testable import Tracker

/// Feeds `input` to a fresh parser in chunks of `chunkSize` bytes (0 means all at once), then reports
/// the end of the stream if the response was not complete yet.
func parseHTTP(
    _ input: [UInt8], chunkSize: Int, limits: HTTPResponseParser.Limits = .init(), close: Bool = true
) -> Result<HTTPResponse, TrackerError>? {
    var parser = HTTPResponseParser(limits: limits)
    let size = chunkSize == 0 ? max(1, input.count) : chunkSize
    var offset = 0
    do {
        while offset < input.count {
            let end = min(input.count, offset + size)
            if case .complete(let response) = try parser.feed(input[offset..<end]) {
                return .success(response)
            }
            offset = end
        }
        return close ? .success(try parser.finish()) : nil
    } catch {
        return .failure(error)
    }
}

/// The same input, byte at a time, in odd chunks, and all at once, must give the same outcome.
func parseAllWays(
    _ input: [UInt8], limits: HTTPResponseParser.Limits = .init()
) -> Result<HTTPResponse, TrackerError>? {
    let whole = parseHTTP(input, chunkSize: 0, limits: limits)
    for chunkSize in [1, 2, 7] {
        #expect(parseHTTP(input, chunkSize: chunkSize, limits: limits) == whole, "chunks of \(chunkSize)")
    }
    return whole
}

@Suite struct HTTPRequestEncoderTests {
    @Test func getRequestBytes() {
        let target = url("http://[2001:db8::1]:6969/announce?info_hash=%00")
        let request = String(
            decoding: HTTPRequestEncoder.get(target, userAgent: "Potluck/0.1\r\nX: y"), as: UTF8.self)
        #expect(
            request
                == "GET /announce?info_hash=%00 HTTP/1.1\r\n" + "Host: [2001:db8::1]:6969\r\n"
                + "User-Agent: Potluck/0.1X: y\r\n" + "Accept-Encoding: identity\r\n"
                + "Connection: close\r\n\r\n")
    }
}

@Suite struct HTTPResponseParserTests {
    @Test func contentLengthBody() {
        let input = ascii("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
        let result = parseAllWays(input + ascii("ignored trailing bytes"))
        #expect(
            result
                == .success(
                    HTTPResponse(
                        statusCode: 200, reasonPhrase: "OK",
                        headers: [
                            HTTPHeader(name: "Content-Type", value: "text/plain"),
                            HTTPHeader(name: "Content-Length", value: "5"),
                        ], body: ascii("hello"))))
    }

    @Test func contentLengthCompletesWithoutWaitingForClose() {
        let input = ascii("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab")
        #expect(parseHTTP(input, chunkSize: 1, close: false) != nil)
        #expect(parseHTTP(Array(input.dropLast()), chunkSize: 1, close: false) == nil)
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let input = ascii(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "4;name=value\r\nd8:i\r\n" + "B\r\nntervali1ee\r\n" + "0\r\nX-Trailer: 1\r\n\r\n")
        let response = try #require(try parseAllWays(input)?.get())
        #expect(response.body == ascii("d8:intervali1ee"))
        #expect(response.header("transfer-encoding") == "chunked")
    }

    @Test func bareLineFeedsAreAccepted() throws {
        let input = ascii("HTTP/1.0 200 OK\nContent-Length: 3\n\nabc")
        #expect(try parseAllWays(input)?.get().body == ascii("abc"))
    }

    @Test func bodyUntilClose() throws {
        let input = ascii("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nd8:intervali60ee")
        let response = try #require(try parseAllWays(input)?.get())
        #expect(response.body == ascii("d8:intervali60ee"))
        #expect(parseHTTP(input, chunkSize: 3, close: false) == nil)
    }

    @Test func interimResponsesAreSkipped() throws {
        let input = ascii("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
        let response = try #require(try parseAllWays(input)?.get())
        #expect(response.statusCode == 200)
        #expect(response.headers == [HTTPHeader(name: "Content-Length", value: "1")])
    }

    @Test func noContentHasNoBody() throws {
        let response = try #require(
            try parseHTTP(ascii("HTTP/1.1 204 No Content\r\n\r\n"), chunkSize: 1, close: false)?.get())
        #expect(response.statusCode == 204)
        #expect(response.body.isEmpty)
    }

    @Test func truncatedResponsesFailAtClose() {
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
                == .failure(.http(.truncated(receivedBodyBytes: 3))))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"))
                == .failure(.http(.truncated(receivedBodyBytes: 2))))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nContent-Len"))
                == .failure(.http(.truncated(receivedBodyBytes: 0))))
        #expect(parseAllWays([]) == .failure(.http(.truncated(receivedBodyBytes: 0))))
    }

    @Test func malformedResponses() {
        #expect(parseAllWays(ascii("ICY 200 OK\r\n\r\n")) == .failure(.http(.malformedStatusLine)))
        #expect(parseAllWays(ascii("HTTP/1.1 2x0 OK\r\n\r\n")) == .failure(.http(.malformedStatusLine)))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n"))
                == .failure(.http(.malformedHeaderLine)))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n"))
                == .failure(.http(.malformedHeaderLine)))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"))
                == .failure(.http(.invalidContentLength)))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"))
                == .failure(.http(.invalidContentLength)))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"))
                == .failure(.http(.unsupportedTransferEncoding("gzip, chunked"))))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
                == .failure(.http(.invalidChunkSize)))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"))
                == .failure(.http(.missingChunkTerminator)))
    }

    @Test func sizeLimits() {
        let limits = HTTPResponseParser.Limits(maxHeaderBytes: 64, maxHeaderCount: 2, maxBodyBytes: 8)
        let longHeader = ascii(
            "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: 100) + "\r\n\r\n")
        #expect(parseAllWays(longHeader, limits: limits) == .failure(.http(.headersTooLarge(limit: 64))))
        let endless = ascii("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 10_000))
        #expect(parseAllWays(endless, limits: limits) == .failure(.http(.headersTooLarge(limit: 64))))
        let manyHeaders = ascii("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        #expect(parseAllWays(manyHeaders, limits: limits) == .failure(.http(.tooManyHeaders(limit: 2))))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), limits: limits)
                == .failure(.http(.bodyTooLarge(limit: 8))))
        #expect(
            parseAllWays(ascii("HTTP/1.1 200 OK\r\n\r\n123456789"), limits: limits)
                == .failure(.http(.bodyTooLarge(limit: 8))))
        let chunks = ascii(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n4\r\n6789\r\n0\r\n\r\n")
        #expect(parseAllWays(chunks, limits: limits) == .failure(.http(.bodyTooLarge(limit: 8))))
        let exactly = ascii(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n3\r\n678\r\n0\r\n\r\n")
        #expect(
            parseAllWays(exactly, limits: limits)
                == .success(
                    HTTPResponse(
                        statusCode: 200, reasonPhrase: "OK",
                        headers: [HTTPHeader(name: "Transfer-Encoding", value: "chunked")],
                        body: ascii("12345678"))))
    }
}

@Suite struct HTTPTrackerSessionTests {
    static let agent = "Potluck/test"

    @Test func redirectsAreFollowedThenTheBodyIsDelivered() {
        var session = HTTPTrackerSession(url: url("http://a.example/announce?k=1"), userAgent: Self.agent)
        let first = session.start()
        #expect(
            first
                == .connect(
                    url: url("http://a.example/announce?k=1"),
                    request: HTTPRequestEncoder.get(
                        url("http://a.example/announce?k=1"), userAgent: Self.agent)))
        let redirect = session.receive(
            ascii(
                "HTTP/1.1 302 Found\r\nLocation: https://b.example/announce?k=2\r\nContent-Length: 0\r\n\r\n")
        )
        guard case .connect(let second, _) = redirect else {
            Issue.record("expected a new connection, got \(String(describing: redirect))")
            return
        }
        #expect(second.requiresTLS)
        #expect(second.description == "https://b.example/announce?k=2")
        #expect(session.redirectCount == 1)
        // No framing headers: the redirect's body runs until the server closes the connection.
        #expect(session.receive(ascii("HTTP/1.1 307 Temporary\r\nLocation: /other\r\n\r\nmoved")) == nil)
        let relative = session.connectionClosed()
        #expect(
            relative
                == .connect(
                    url: url("https://b.example/other"),
                    request: HTTPRequestEncoder.get(url("https://b.example/other"), userAgent: Self.agent)))
        #expect(session.receive(ascii("HTTP/1.1 200 OK\r\n\r\nd8:inter")) == nil)
        #expect(session.receive(ascii("vali60ee")) == nil)
        let done = session.connectionClosed()
        #expect(
            done
                == .completed(
                    HTTPResponse(
                        statusCode: 200, reasonPhrase: "OK", headers: [], body: ascii("d8:intervali60ee"))))
        #expect(session.receive(ascii("more")) == done)
    }

    @Test func redirectCountIsBounded() {
        var session = HTTPTrackerSession(
            url: url("http://a.example/announce"), userAgent: Self.agent, maxRedirects: 2)
        _ = session.start()
        let loop = ascii("HTTP/1.1 301 Moved\r\nLocation: /announce\r\nContent-Length: 0\r\n\r\n")
        guard case .connect = session.receive(loop), case .connect = session.receive(loop) else {
            Issue.record("the first two redirects should be followed")
            return
        }
        #expect(session.receive(loop) == .failed(.tooManyRedirects(limit: 2)))
    }

    @Test func badRedirectsAndStatusesFail() {
        var noLocation = HTTPTrackerSession(url: url("http://a.example/announce"), userAgent: Self.agent)
        _ = noLocation.start()
        #expect(
            noLocation.receive(ascii("HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"))
                == .failed(.redirectWithoutLocation(code: 302)))

        var toUDP = HTTPTrackerSession(url: url("http://a.example/announce"), userAgent: Self.agent)
        _ = toUDP.start()
        #expect(toUDP.receive(ascii("HTTP/1.1 302 Found\r\nLocation: udp://a.example:1/\r\n\r\n")) == nil)
        #expect(
            toUDP.connectionClosed()
                == .failed(
                    .invalidRedirect(location: "udp://a.example:1/", problem: .unsupportedScheme("udp"))))

        var notFound = HTTPTrackerSession(url: url("http://a.example/announce"), userAgent: Self.agent)
        _ = notFound.start()
        #expect(
            notFound.receive(ascii("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                == .failed(.httpStatus(code: 404, reason: "Not Found")))

        var garbage = HTTPTrackerSession(url: url("http://a.example/announce"), userAgent: Self.agent)
        _ = garbage.start()
        #expect(garbage.receive(ascii("SSH-2.0-OpenSSH\r\n")) == .failed(.http(.malformedStatusLine)))

        var udp = HTTPTrackerSession(url: url("udp://a.example:1/announce"), userAgent: Self.agent)
        #expect(udp.start() == .failed(.wrongTransport(url: "udp://a.example:1/announce")))
    }
}

@Suite struct HTTPAnnounceEndToEndTests {
    @Test func chunkedAnnounceAnswerThroughTheSessionAndTheParser() throws {
        let body =
            ascii("d8:intervali900e5:peers12:") + [10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2]
            + ascii("e")
        let split = 11
        let hexFirst = String(split, radix: 16)
        let hexRest = String(body.count - split, radix: 16)
        let wire =
            ascii(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            )
            + ascii("\(hexFirst)\r\n") + body[..<split] + ascii("\r\n") + ascii("\(hexRest)\r\n")
            + body[split...]
            + ascii("\r\n0\r\n\r\n")
        var session = HTTPTrackerSession(url: url("http://t.example/announce"), userAgent: "test")
        _ = session.start()
        var final: HTTPTrackerSession.Action?
        // Byte at a time, as a slow link would deliver it; chunked framing wins over Content-Length.
        for byte in wire where final == nil { final = session.receive([byte]) }
        guard case .completed(let response) = final else {
            Issue.record("no response: \(String(describing: final))")
            return
        }
        #expect(response.body == body)
        let announce = try AnnounceResponse(parsing: response.body)
        #expect(announce.intervalSeconds == 900)
        #expect(announce.peers.map(\.description) == ["10.0.0.1:6881", "10.0.0.2:6882"])
    }

    @Test func instantsSaturateInsteadOfWrapping() {
        let late = Instant(nanoseconds: .max - 1)
        #expect(late.adding(seconds: 1) == Instant(nanoseconds: .max))
        #expect(Instant.zero.adding(seconds: .max) == Instant(nanoseconds: .max))
        #expect(Instant.seconds(2).nanoseconds(since: .seconds(5)) == 0)
        #expect(Instant.seconds(5).nanoseconds(since: .seconds(2)) == 3_000_000_000)
    }
}
