/// One HTTP header as received: the name as sent, the value trimmed of surrounding spaces and tabs.
public struct HTTPHeader: Hashable, Sendable {
    /// The field name as the server wrote it.
    public var name: String
    /// The field value, trimmed.
    public var value: String

    /// A header from its parts.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A complete HTTP response.
public struct HTTPResponse: Hashable, Sendable {
    /// The three-digit status code.
    public var statusCode: Int
    /// The text after the status code, for logs.
    public var reasonPhrase: String
    /// The header fields in the order received (trailers are dropped).
    public var headers: [HTTPHeader]
    /// The body with any chunked framing removed.
    public var body: [UInt8]

    /// A response from its parts.
    public init(statusCode: Int, reasonPhrase: String, headers: [HTTPHeader], body: [UInt8]) {
        self.statusCode = statusCode
        self.reasonPhrase = reasonPhrase
        self.headers = headers
        self.body = body
    }

    /// The first header called `name` (compared case-insensitively), if any.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// 301, 302, 303, 307 or 308: the request should be repeated at `Location`.
    public var isRedirect: Bool { [301, 302, 303, 307, 308].contains(statusCode) }
}

/// Writes the HTTP/1.1 requests a tracker client (and the daemon's few requests of its own) sends.
public enum HTTPRequestEncoder {
    /// The request bytes for `url`: `Host`, `Connection: close` (we read one response per connection,
    /// so the end of the body may also be the end of the stream), `Accept-Encoding: identity` (we cannot
    /// decompress) and `User-Agent`. Characters that could break the header are removed from
    /// `userAgent`; the URL parser already refused them in the target.
    public static func get(_ url: TrackerURL, userAgent: String) -> [UInt8] {
        request("GET", url, userAgent: userAgent)
    }

    /// `method` for `url` with the same fixed headers as ``get(_:userAgent:)``, then `headers` and,
    /// when there is one, `body` with its `Content-Length`. Characters that could break the header are
    /// removed from the method, the names and the values.
    public static func request(
        _ method: String, _ url: TrackerURL, headers: [HTTPHeader] = [], body: [UInt8] = [], userAgent: String
    ) -> [UInt8] {
        var text =
            "\(headerSafe(method)) \(url.requestTarget) HTTP/1.1\r\n" + "Host: \(url.hostHeader)\r\n"
            + "User-Agent: \(headerSafe(userAgent))\r\n"
            + "Accept-Encoding: identity\r\n" + "Connection: close\r\n"
        for header in headers { text += "\(headerSafe(header.name)): \(headerSafe(header.value))\r\n" }
        if !body.isEmpty { text += "Content-Length: \(body.count)\r\n" }
        return Array((text + "\r\n").utf8) + body
    }

    /// `text` without control characters or bytes beyond ASCII.
    private static func headerSafe(_ text: String) -> String {
        String(decoding: text.utf8.filter { $0 >= 0x20 && $0 < 0x7f }, as: UTF8.self)
    }
}

/// An incremental HTTP/1.1 response parser: feed it bytes as they arrive, in chunks of any size, and it
/// reports the response once complete.
///
/// Handles a status line, headers, and a body framed by `Content-Length`, by `Transfer-Encoding:
/// chunked`, or by the end of the connection (call ``finish()``). Interim 1xx responses are skipped.
/// Bare LF line endings are accepted as well as CRLF, as RFC 9112 allows.
///
/// Invariants: `headerBytes <= limits.maxHeaderBytes` and `headers.count <= limits.maxHeaderCount`;
/// `body.count <= limits.maxBodyBytes`; once `phase` is `.done` or `.failed` it never changes and every
/// later call returns the same outcome; `line` holds only bytes of the current, unfinished line.
public struct HTTPResponseParser: Sendable {
    /// Size limits on a response.
    public struct Limits: Hashable, Sendable {
        /// The status line, headers and chunk trailers together, in bytes.
        public var maxHeaderBytes: Int
        /// The most header fields kept.
        public var maxHeaderCount: Int
        /// The decoded body, in bytes.
        public var maxBodyBytes: Int

        /// 16 KiB of headers, 100 of them, a 1 MiB body: tracker answers are a few KiB.
        public init(maxHeaderBytes: Int = 16 * 1024, maxHeaderCount: Int = 100, maxBodyBytes: Int = 1 << 20) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxHeaderCount = maxHeaderCount
            self.maxBodyBytes = maxBodyBytes
        }
    }

    /// What the parser needs next.
    public enum Progress: Hashable, Sendable {
        case needMoreBytes
        case complete(HTTPResponse)
    }

    private enum Phase: Sendable {
        case statusLine
        case headers
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done(HTTPResponse)
        case failed(TrackerError)
    }

    /// Chunk size lines (with extensions) longer than this are refused.
    private static let maxChunkLineBytes = 1024

    /// The limits this parser enforces.
    public let limits: Limits
    private var phase = Phase.statusLine
    private var line: [UInt8] = []
    private var headerBytes = 0
    private var statusCode = 0
    private var reasonPhrase = ""
    private var headers: [HTTPHeader] = []
    private var body: [UInt8] = []

    /// A parser waiting for a status line.
    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Consumes `bytes`. Bytes after the end of the response are ignored (we sent `Connection: close`).
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(TrackerError) -> Progress {
        let input = Array(bytes)
        var index = 0
        while index < input.count {
            switch phase {
            case .done(let response): return .complete(response)
            case .failed(let error): throw error
            default: break
            }
            do {
                index = try step(input, from: index)
            } catch {
                phase = .failed(error)
                throw error
            }
        }
        switch phase {
        case .done(let response): return .complete(response)
        case .failed(let error): throw error
        default: return .needMoreBytes
        }
    }

    /// The connection closed: completes a body that runs until close; anything else unfinished is
    /// ``HTTPProblem/truncated(receivedBodyBytes:)``.
    public mutating func finish() throws(TrackerError) -> HTTPResponse {
        switch phase {
        case .done(let response): return response
        case .failed(let error): throw error
        case .untilClose:
            let response = makeResponse()
            phase = .done(response)
            return response
        default:
            let error = TrackerError.http(.truncated(receivedBodyBytes: body.count))
            phase = .failed(error)
            throw error
        }
    }

    /// Advances through `input` from `start` within the current phase; returns where it stopped.
    private mutating func step(_ input: [UInt8], from start: Int) throws(TrackerError) -> Int {
        switch phase {
        case .statusLine, .headers, .trailers, .chunkSize, .chunkDataEnd:
            let isChunkLine: Bool
            if case .chunkSize = phase {
                isChunkLine = true
            } else if case .chunkDataEnd = phase {
                isChunkLine = true
            } else {
                isChunkLine = false
            }
            var index = start
            while index < input.count {
                let byte = input[index]
                index += 1
                if byte == UInt8(ascii: "\n") {
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    let complete = line
                    line.removeAll(keepingCapacity: true)
                    try lineCompleted(complete)
                    return index
                }
                line.append(byte)
                if isChunkLine {
                    guard line.count <= Self.maxChunkLineBytes else { throw .http(.invalidChunkSize) }
                } else {
                    headerBytes += 1
                    guard headerBytes <= limits.maxHeaderBytes else {
                        throw .http(.headersTooLarge(limit: limits.maxHeaderBytes))
                    }
                }
            }
            return index
        case .fixedBody(let remaining):
            let take = min(remaining, input.count - start)
            body.append(contentsOf: input[start..<(start + take)])
            if remaining - take == 0 {
                phase = .done(makeResponse())
            } else {
                phase = .fixedBody(remaining: remaining - take)
            }
            return start + take
        case .chunkData(let remaining):
            let take = min(remaining, input.count - start)
            body.append(contentsOf: input[start..<(start + take)])
            phase = remaining - take == 0 ? .chunkDataEnd : .chunkData(remaining: remaining - take)
            return start + take
        case .untilClose:
            let take = input.count - start
            guard body.count + take <= limits.maxBodyBytes else {
                throw .http(.bodyTooLarge(limit: limits.maxBodyBytes))
            }
            body.append(contentsOf: input[start...])
            return input.count
        case .done, .failed:
            return input.count
        }
    }

    private mutating func lineCompleted(_ line: [UInt8]) throws(TrackerError) {
        switch phase {
        case .statusLine:
            // RFC 9112 asks clients to ignore empty lines before the status line.
            if line.isEmpty { return }
            try parseStatusLine(line)
            phase = .headers
        case .headers:
            if line.isEmpty {
                try headersCompleted()
            } else {
                try parseHeaderLine(line)
            }
        case .chunkSize:
            let sizeText = line.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != 0x20 && $0 != 0x09 }
            guard !sizeText.isEmpty, sizeText.count <= 15 else { throw .http(.invalidChunkSize) }
            var size = 0
            for byte in sizeText {
                guard let digit = hexValue(byte) else { throw .http(.invalidChunkSize) }
                size = size << 4 | digit
            }
            if size == 0 {
                phase = .trailers
                return
            }
            guard size <= limits.maxBodyBytes - body.count else {
                throw .http(.bodyTooLarge(limit: limits.maxBodyBytes))
            }
            phase = .chunkData(remaining: size)
        case .chunkDataEnd:
            guard line.isEmpty else { throw .http(.missingChunkTerminator) }
            phase = .chunkSize
        case .trailers:
            // Trailer fields are read for framing and dropped: nothing a tracker sends there matters.
            if line.isEmpty { phase = .done(makeResponse()) }
        default:
            break
        }
    }

    private mutating func parseStatusLine(_ line: [UInt8]) throws(TrackerError) {
        // HTTP/1.x SP 3DIGIT [SP reason]
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8), line[7] >= 48, line[7] <= 57,
            line[8] == UInt8(ascii: " "), line[9...11].allSatisfy({ $0 >= 48 && $0 <= 57 }),
            line.count == 12 || line[12] == UInt8(ascii: " ")
        else { throw .http(.malformedStatusLine) }
        statusCode = line[9...11].reduce(0) { $0 * 10 + Int($1 - 48) }
        guard statusCode >= 100 else { throw .http(.malformedStatusLine) }
        reasonPhrase = line.count > 13 ? String(decoding: line[13...], as: UTF8.self) : ""
    }

    private mutating func parseHeaderLine(_ line: [UInt8]) throws(TrackerError) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0,
            line[..<colon].allSatisfy(isTokenByte)
        else { throw .http(.malformedHeaderLine) }
        guard headers.count < limits.maxHeaderCount else {
            throw .http(.tooManyHeaders(limit: limits.maxHeaderCount))
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value.removeFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value.removeLast() }
        headers.append(
            HTTPHeader(
                name: String(decoding: line[..<colon], as: UTF8.self),
                value: String(decoding: value, as: UTF8.self)))
    }

    /// Chooses how the body is framed (RFC 9112 section 6.3).
    private mutating func headersCompleted() throws(TrackerError) {
        if (100...199).contains(statusCode) {
            // An interim response: the real one follows on the same connection.
            headers.removeAll()
            phase = .statusLine
            return
        }
        if statusCode == 204 || statusCode == 304 {
            phase = .done(makeResponse())
            return
        }
        let lowered = headers.map { (name: $0.name.lowercased(), value: $0.value) }
        let codings = lowered.filter { $0.name == "transfer-encoding" }
            .flatMap { $0.value.split(separator: ",") }
            .map { $0.trimmingSpaces().lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        if !codings.isEmpty {
            guard codings == ["chunked"] else {
                throw .http(.unsupportedTransferEncoding(codings.joined(separator: ", ")))
            }
            phase = .chunkSize
            return
        }
        let lengths = lowered.filter { $0.name == "content-length" }.flatMap {
            $0.value.split(separator: ",")
        }
        .map { $0.trimmingSpaces() }
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.utf8.count <= 15,
                first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = Int(first)
            else { throw .http(.invalidContentLength) }
            guard length <= limits.maxBodyBytes else {
                throw .http(.bodyTooLarge(limit: limits.maxBodyBytes))
            }
            phase = length == 0 ? .done(makeResponse()) : .fixedBody(remaining: length)
            return
        }
        phase = .untilClose
    }

    private func makeResponse() -> HTTPResponse {
        HTTPResponse(statusCode: statusCode, reasonPhrase: reasonPhrase, headers: headers, body: body)
    }
}

/// RFC 9110 token characters, the ones allowed in a header name.
private func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }
}

private func hexValue(_ byte: UInt8) -> Int? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
    default: nil
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    fileprivate func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}

/// One HTTP exchange with a tracker, following redirects: a pure state machine the I/O layer drives.
///
/// The caller opens a connection (with TLS when ``TrackerURL/requiresTLS``) for each
/// ``Action/connect(url:request:)``, writes the request, passes what it reads to ``receive(_:)`` and
/// reports the end of the stream with ``connectionClosed()``. Any action other than `connect` ends the
/// exchange; a `connect` after the first means the previous connection should be closed.
///
/// Invariants: `redirectCount <= maxRedirects`; once `.finished`, every call returns the final action
/// again and nothing is sent; the parser always belongs to the connection to `currentURL`.
public struct HTTPTrackerSession: Sendable {
    /// What the I/O layer should do next.
    public enum Action: Hashable, Sendable {
        /// Connect to `url` (a fresh connection) and send `request`.
        case connect(url: TrackerURL, request: [UInt8])
        /// A final 2xx response: hand `body` to the announce or scrape parser.
        case completed(HTTPResponse)
        case failed(TrackerError)
    }

    private enum Phase: Hashable, Sendable {
        case idle
        case awaitingResponse
        case finished(Action)
    }

    /// Sent as `User-Agent` on every request.
    public let userAgent: String
    /// How many redirects are followed before giving up.
    public let maxRedirects: Int
    /// Limits applied to each response.
    public let parserLimits: HTTPResponseParser.Limits
    /// The URL of the current (or last) request, after redirects.
    public private(set) var currentURL: TrackerURL
    /// Redirects followed so far.
    public private(set) var redirectCount = 0
    private var parser: HTTPResponseParser
    private var phase = Phase.idle

    /// - Parameters:
    ///   - url: an `http` or `https` URL, usually from ``AnnounceRequest/url(tracker:)`` or
    ///     ``Scrape/requestURL(announce:infoHashes:)``.
    ///   - maxRedirects: 5, as most HTTP clients allow.
    public init(
        url: TrackerURL, userAgent: String, maxRedirects: Int = 5,
        parserLimits: HTTPResponseParser.Limits = .init()
    ) {
        self.currentURL = url
        self.userAgent = userAgent
        self.maxRedirects = max(0, maxRedirects)
        self.parserLimits = parserLimits
        self.parser = HTTPResponseParser(limits: parserLimits)
    }

    /// The first connection to make (or the final action, if already finished).
    public mutating func start() -> Action {
        switch phase {
        case .finished(let action): return action
        case .awaitingResponse, .idle:
            guard currentURL.scheme != .udp else {
                return finish(.failed(.wrongTransport(url: currentURL.description)))
            }
            phase = .awaitingResponse
            parser = HTTPResponseParser(limits: parserLimits)
            return .connect(
                url: currentURL, request: HTTPRequestEncoder.get(currentURL, userAgent: userAgent))
        }
    }

    /// Bytes read from the current connection; nil while the response is incomplete.
    public mutating func receive(_ bytes: some Collection<UInt8>) -> Action? {
        switch phase {
        case .finished(let action): return action
        case .idle: return nil
        case .awaitingResponse:
            do {
                switch try parser.feed(bytes) {
                case .needMoreBytes: return nil
                case .complete(let response): return responseCompleted(response)
                }
            } catch {
                return finish(.failed(error))
            }
        }
    }

    /// The current connection ended (orderly close or error).
    public mutating func connectionClosed() -> Action {
        switch phase {
        case .finished(let action): return action
        case .idle: return start()
        case .awaitingResponse:
            do {
                return responseCompleted(try parser.finish())
            } catch {
                return finish(.failed(error))
            }
        }
    }

    private mutating func responseCompleted(_ response: HTTPResponse) -> Action {
        if response.isRedirect {
            guard let location = response.header("Location"), !location.isEmpty else {
                return finish(.failed(.redirectWithoutLocation(code: response.statusCode)))
            }
            let next: TrackerURL
            do {
                next = try currentURL.resolving(location)
            } catch {
                return finish(.failed(error))
            }
            guard next.scheme != .udp else {
                return finish(
                    .failed(.invalidRedirect(location: location, problem: .unsupportedScheme("udp"))))
            }
            guard redirectCount < maxRedirects else {
                return finish(.failed(.tooManyRedirects(limit: maxRedirects)))
            }
            redirectCount += 1
            currentURL = next
            parser = HTTPResponseParser(limits: parserLimits)
            return .connect(url: next, request: HTTPRequestEncoder.get(next, userAgent: userAgent))
        }
        guard (200...299).contains(response.statusCode) else {
            return finish(
                .failed(
                    .httpStatus(code: response.statusCode, reason: String(response.reasonPhrase.prefix(200))))
            )
        }
        return finish(.completed(response))
    }

    private mutating func finish(_ action: Action) -> Action {
        phase = .finished(action)
        return action
    }
}
