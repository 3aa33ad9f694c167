import Testing

@testable import WebSeed

/// Feeds `text` to a parser for `range` of a file of `fileLength` bytes, all at once or a byte at a time,
/// and returns the body bytes handed out, with the last outcome.
private func parse(
    _ text: String, range: Range<Int64>, fileLength: Int64, byteAtATime: Bool
) throws -> (body: [UInt8], offsets: [Int64], outcome: RangeResponseParser.Outcome, consumed: Int) {
    var parser = RangeResponseParser(range: range, fileLength: fileLength)
    let bytes = Array(text.utf8)
    var body: [UInt8] = []
    var offsets: [Int64] = []
    var outcome = RangeResponseParser.Outcome.needMoreBytes
    var consumed = 0
    let step = byteAtATime ? 1 : max(1, bytes.count)
    var start = 0
    while start < bytes.count {
        let end = min(bytes.count, start + step)
        let result = try Array(bytes[start..<end]).withUnsafeBytes { chunk in
            try parser.feed(chunk) { offset, part in
                offsets.append(offset)
                body += part
            }
        }
        consumed += result.consumed
        outcome = result.outcome
        if outcome != .needMoreBytes { break }
        start = end
    }
    return (body, offsets, outcome, consumed)
}

@Suite struct RangeResponseParserTests {
    @Test(arguments: [false, true])
    func partialContentHandsOutTheRangeInOrder(byteAtATime: Bool) throws {
        let answer =
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-14/100\r\nContent-Length: 5\r\n\r\nhelloNEXT"
        let result = try parse(answer, range: 10..<15, fileLength: 100, byteAtATime: byteAtATime)
        #expect(result.body == Array("hello".utf8))
        #expect(result.offsets.first == 10)
        #expect(result.outcome == .complete(connectionReusable: true))
        // The bytes after the body belong to the next answer on the connection.
        #expect(result.consumed == answer.utf8.count - 4)
    }

    @Test func interimAnswersAreSkippedAndCloseIsHonoured() throws {
        let answer =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 OK\nContent-Range: bytes 0-1/*\nConnection: close\nContent-Length: 2\n\nab"
        let result = try parse(answer, range: 0..<2, fileLength: 7, byteAtATime: false)
        #expect(result.body == Array("ab".utf8))
        #expect(result.outcome == .complete(connectionReusable: false))
    }

    @Test func wholeFileAnswerIsAcceptedOnlyForTheWholeFile() throws {
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
        let whole = try parse(answer, range: 0..<4, fileLength: 4, byteAtATime: true)
        #expect(whole.body == Array("abcd".utf8))
        #expect(throws: WebSeedError.rangeIgnored(requested: 0..<2, fileLength: 4)) {
            try parse(answer, range: 0..<2, fileLength: 4, byteAtATime: false)
        }
        #expect(throws: WebSeedError.rangeIgnored(requested: 2..<4, fileLength: 4)) {
            try parse(answer, range: 2..<4, fileLength: 4, byteAtATime: false)
        }
        #expect(WebSeedError.rangeIgnored(requested: 2..<4, fileLength: 4).dropsSeed)
    }

    @Test func aDifferentRangeOrFileLengthIsRefused() {
        let expected = "bytes 10-14/100"
        for contentRange in [
            "bytes 11-15/100", "bytes 10-14/99", "bytes 10-13/100", "bytes=10-14/100", "junk",
        ] {
            let answer = "HTTP/1.1 206 OK\r\nContent-Range: \(contentRange)\r\nContent-Length: 5\r\n\r\nhello"
            #expect(throws: WebSeedError.contentRangeMismatch(expected: expected, received: contentRange)) {
                try parse(answer, range: 10..<15, fileLength: 100, byteAtATime: false)
            }
        }
        let multipart = "HTTP/1.1 206 OK\r\nContent-Type: multipart/byteranges\r\n\r\n"
        #expect(throws: WebSeedError.contentRangeMismatch(expected: expected, received: "none")) {
            try parse(multipart, range: 10..<15, fileLength: 100, byteAtATime: false)
        }
        let wrongLength =
            "HTTP/1.1 206 OK\r\nContent-Range: bytes 10-14/100\r\nContent-Length: 6\r\n\r\nhello!"
        #expect(throws: WebSeedError.contentLengthMismatch(expected: 5, received: 6)) {
            try parse(wrongLength, range: 10..<15, fileLength: 100, byteAtATime: false)
        }
    }

    @Test func codingsAreRefused() {
        let chunked =
            "HTTP/1.1 206 OK\r\nContent-Range: bytes 0-4/5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello"
        #expect(throws: WebSeedError.unsupportedTransferEncoding("chunked")) {
            try parse(chunked, range: 0..<5, fileLength: 5, byteAtATime: false)
        }
        let gzip = "HTTP/1.1 206 OK\r\nContent-Range: bytes 0-4/5\r\nContent-Encoding: gzip\r\n\r\n"
        #expect(throws: WebSeedError.unsupportedContentEncoding("gzip")) {
            try parse(gzip, range: 0..<5, fileLength: 5, byteAtATime: false)
        }
    }

    @Test func redirectsAndBusyAnswersEndAtTheirHeaders() throws {
        let redirect = "HTTP/1.1 302 Found\r\nLocation: /elsewhere/a.bin\r\nContent-Length: 100\r\n\r\n"
        #expect(
            try parse(redirect, range: 0..<5, fileLength: 5, byteAtATime: true).outcome
                == .redirect(location: "/elsewhere/a.bin"))
        let busy = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\n"
        #expect(
            try parse(busy, range: 0..<5, fileLength: 5, byteAtATime: false).outcome
                == .busy(retryAfterSeconds: 7))
        let busyDate = "HTTP/1.1 503 Busy\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n"
        #expect(
            try parse(busyDate, range: 0..<5, fileLength: 5, byteAtATime: false).outcome
                == .busy(retryAfterSeconds: nil))
        #expect(throws: WebSeedError.redirectWithoutLocation(code: 301)) {
            try parse("HTTP/1.1 301 Moved\r\n\r\n", range: 0..<5, fileLength: 5, byteAtATime: false)
        }
    }

    @Test func errorStatusesSayWhetherToDropTheSeed() {
        #expect(throws: WebSeedError.status(code: 404, reason: "Not Found")) {
            try parse("HTTP/1.1 404 Not Found\r\n\r\n", range: 0..<5, fileLength: 5, byteAtATime: false)
        }
        #expect(WebSeedError.status(code: 404, reason: "").dropsSeed)
        #expect(!WebSeedError.status(code: 500, reason: "").dropsSeed)
        #expect(!WebSeedError.truncated(receivedBytes: 1, expectedBytes: 2).dropsSeed)
    }

    @Test func malformedAndOversizedHeadersAreRefused() {
        for answer in ["HTTP/2 206 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "ICY 200 OK\r\n\r\n"] {
            #expect(throws: WebSeedError.malformedStatusLine) {
                try parse(answer, range: 0..<5, fileLength: 5, byteAtATime: false)
            }
        }
        #expect(throws: WebSeedError.malformedHeaderLine) {
            try parse(
                "HTTP/1.1 206 OK\r\nBad Header: x\r\n\r\n", range: 0..<5, fileLength: 5, byteAtATime: false)
        }
        #expect(throws: WebSeedError.malformedHeaderLine) {
            try parse(
                "HTTP/1.1 206 OK\r\nA: x\r\n folded\r\n\r\n", range: 0..<5, fileLength: 5, byteAtATime: false)
        }
        let huge = "HTTP/1.1 206 OK\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
        #expect(throws: WebSeedError.headersTooLarge(limit: 16 * 1024)) {
            try parse(huge, range: 0..<5, fileLength: 5, byteAtATime: false)
        }
        let many = "HTTP/1.1 206 OK\r\n" + String(repeating: "X: 1\r\n", count: 65) + "\r\n"
        #expect(throws: WebSeedError.tooManyHeaders(limit: 64)) {
            try parse(many, range: 0..<5, fileLength: 5, byteAtATime: false)
        }
    }

    @Test func closingMidBodyReportsWhatArrived() throws {
        var parser = RangeResponseParser(range: 0..<10, fileLength: 10)
        let answer = Array("HTTP/1.1 206 OK\r\nContent-Range: bytes 0-9/10\r\n\r\nabc".utf8)
        let result = try answer.withUnsafeBytes { bytes in try parser.feed(bytes) { _, _ in } }
        #expect(result.outcome == .needMoreBytes)
        #expect(parser.connectionClosed() == .truncated(receivedBytes: 3, expectedBytes: 10))
    }
}
