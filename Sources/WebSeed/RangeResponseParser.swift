/// Reads the answer to one ``RangeRequest`` incrementally, in chunks of any size, handing out the body's
/// bytes in place as they arrive (a web seed's body goes straight into piece buffers, never gathered).
///
/// Only what the request makes sensible is accepted: 206 with the `Content-Range` asked for, or 200 when
/// the whole file was asked for (a server that ignores ranges would otherwise send the whole file for
/// every piece). Redirects and "busy" (503, 429) are reported once their headers are in; their bodies
/// are not read (the caller closes the connection). Chunked and compressed bodies are refused: nothing
/// in a range answer calls for them. Interim 1xx answers are skipped; bare LF line endings are accepted.
///
/// Invariants: header bytes (status lines included) stay within `limits.maxHeaderBytes` and fields
/// within `limits.maxHeaderCount`; the bytes handed out are exactly the requested range, in order, each
/// once; once finished or failed, every later call gives the same outcome and consumes nothing.
public struct RangeResponseParser: Sendable {
    /// Bounds on what a server may send before the body.
    public struct Limits: Hashable, Sendable {
        /// Status lines and header fields together, in bytes.
        public var maxHeaderBytes: Int
        /// Header fields kept per answer.
        public var maxHeaderCount: Int

        /// 16 KiB and 64 fields: a file server's answer has a dozen short ones.
        public init(maxHeaderBytes: Int = 16 * 1024, maxHeaderCount: Int = 64) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxHeaderCount = maxHeaderCount
        }
    }

    /// Where the answer stands after some bytes.
    public enum Outcome: Hashable, Sendable {
        case needMoreBytes
        /// The whole range was handed out; `connectionReusable`: the next answer may follow on it.
        case complete(connectionReusable: Bool)
        /// 3xx with this `Location` (unresolved): ask there instead.
        case redirect(location: String)
        /// 503 or 429: ask again later, after `Retry-After` seconds when the server gave them.
        case busy(retryAfterSeconds: Int?)
    }

    private enum Phase: Hashable, Sendable {
        case statusLine
        case headers
        case body(remaining: Int64, reusable: Bool)
        case finished(Outcome)
        case failed(WebSeedError)
    }

    /// The bytes of the file asked for.
    public let range: Range<Int64>
    /// The file's length according to the torrent.
    public let fileLength: Int64
    public let limits: Limits
    /// Body bytes handed out so far.
    public private(set) var bodyBytesReceived: Int64 = 0
    private var phase = Phase.statusLine
    private var line: [UInt8] = []
    private var headerBytes = 0
    private var statusCode = 0
    private var reason = ""
    private var isHTTP10 = false
    private var headers: [(name: String, value: String)] = []

    public init(range: Range<Int64>, fileLength: Int64, limits: Limits = Limits()) {
        precondition(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= fileLength)
        self.range = range
        self.fileLength = fileLength
        self.limits = limits
    }

    /// Consumes bytes from the front of `bytes` and hands body bytes to `body` with their offset in the
    /// file. Returns how many bytes this answer took (the rest belong to the next answer on the
    /// connection) and where it stands.
    public mutating func feed(
        _ bytes: UnsafeRawBufferPointer, body: (_ fileOffset: Int64, _ bytes: UnsafeRawBufferPointer) -> Void
    ) throws(WebSeedError) -> (consumed: Int, outcome: Outcome) {
        var index = 0
        while true {
            switch phase {
            case .finished(let outcome): return (index, outcome)
            case .failed(let error): throw error
            case .body(let remaining, let reusable):
                guard index < bytes.count else { return (index, .needMoreBytes) }
                let take = Int(min(remaining, Int64(bytes.count - index)))
                body(
                    range.lowerBound + bodyBytesReceived,
                    UnsafeRawBufferPointer(rebasing: bytes[index..<index + take]))
                index += take
                bodyBytesReceived += Int64(take)
                phase =
                    remaining == Int64(take)
                    ? .finished(.complete(connectionReusable: reusable))
                    : .body(remaining: remaining - Int64(take), reusable: reusable)
            case .statusLine, .headers:
                guard index < bytes.count else { return (index, .needMoreBytes) }
                let byte = bytes[index]
                index += 1
                do throws(WebSeedError) {
                    try headerByte(byte)
                } catch {
                    phase = .failed(error)
                    throw error
                }
            }
        }
    }

    /// What the connection ending now means for this answer: nothing when it was complete (or
    /// was a redirect or "busy", whose bodies are not read), else ``WebSeedError/truncated(receivedBytes:expectedBytes:)``.
    public func connectionClosed() -> WebSeedError? {
        switch phase {
        case .finished: nil
        case .failed(let error): error
        default: .truncated(receivedBytes: bodyBytesReceived, expectedBytes: Int64(range.count))
        }
    }

    private mutating func headerByte(_ byte: UInt8) throws(WebSeedError) {
        headerBytes += 1
        guard headerBytes <= limits.maxHeaderBytes else {
            throw .headersTooLarge(limit: limits.maxHeaderBytes)
        }
        guard byte == UInt8(ascii: "\n") else {
            line.append(byte)
            return
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        defer { line.removeAll(keepingCapacity: true) }
        if case .statusLine = phase {
            // RFC 9112 asks clients to ignore empty lines before the status line.
            guard !line.isEmpty else { return }
            try parseStatusLine(line)
            phase = .headers
        } else if line.isEmpty {
            try headersCompleted()
        } else {
            try parseHeaderLine(line)
        }
    }

    private mutating func parseStatusLine(_ line: [UInt8]) throws(WebSeedError) {
        // HTTP/1.x SP 3DIGIT [SP reason]
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8), line[7] == 0x30 || line[7] == 0x31,
            line[8] == UInt8(ascii: " "), line[9...11].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            line.count == 12 || line[12] == UInt8(ascii: " ")
        else { throw .malformedStatusLine }
        statusCode = line[9...11].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard statusCode >= 100 else { throw .malformedStatusLine }
        isHTTP10 = line[7] == 0x30
        reason = line.count > 13 ? String(decoding: line[13...].prefix(100), as: UTF8.self) : ""
    }

    private mutating func parseHeaderLine(_ line: [UInt8]) throws(WebSeedError) {
        // No obsolete line folding (RFC 9112 section 5.2), no empty or non-token names.
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0,
            line[..<colon].allSatisfy(isTokenByte)
        else { throw .malformedHeaderLine }
        guard headers.count < limits.maxHeaderCount else {
            throw .tooManyHeaders(limit: limits.maxHeaderCount)
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value.removeFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value.removeLast() }
        headers.append(
            (
                String(decoding: line[..<colon], as: UTF8.self).lowercased(),
                String(decoding: value, as: UTF8.self)
            ))
    }

    private func values(_ name: String) -> [String] { headers.filter { $0.name == name }.map(\.value) }

    private mutating func headersCompleted() throws(WebSeedError) {
        switch statusCode {
        case 100...199:
            // An interim answer: the real one follows.
            headers.removeAll()
            phase = .statusLine
        case 206:
            try checkCodings()
            let expected = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(fileLength)"
            let contentRange = values("content-range")
            guard contentRange.count == 1, let received = ContentRange(contentRange[0]),
                received.first == range.lowerBound, received.last == range.upperBound - 1,
                received.completeLength == nil || received.completeLength == fileLength
            else {
                throw .contentRangeMismatch(
                    expected: expected, received: contentRange.first.map { String($0.prefix(100)) } ?? "none")
            }
            try startBody(length: Int64(range.count))
        case 200:
            guard range == 0..<fileLength else {
                throw .rangeIgnored(requested: range, fileLength: fileLength)
            }
            try checkCodings()
            try startBody(length: fileLength)
        case 301, 302, 303, 307, 308:
            guard let location = values("location").first, !location.isEmpty else {
                throw .redirectWithoutLocation(code: statusCode)
            }
            phase = .finished(.redirect(location: location))
        case 429, 503:
            // Only delta-seconds; an HTTP-date falls back to the caller's own back-off.
            let retryAfter = values("retry-after").first.flatMap { text in
                text.utf8.count <= 9 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? Int(text) : nil
            }
            phase = .finished(.busy(retryAfterSeconds: retryAfter))
        default:
            throw .status(code: statusCode, reason: reason)
        }
    }

    /// The body must arrive as stored: no transfer or content coding.
    private func checkCodings() throws(WebSeedError) {
        for value in values("transfer-encoding") where value.lowercased() != "identity" {
            throw .unsupportedTransferEncoding(String(value.prefix(100)))
        }
        for value in values("content-encoding") where value.lowercased() != "identity" {
            throw .unsupportedContentEncoding(String(value.prefix(100)))
        }
    }

    /// Checks `Content-Length` against the length the status implies and starts reading the body.
    private mutating func startBody(length: Int64) throws(WebSeedError) {
        let lengths = values("content-length").flatMap { $0.split(separator: ",") }.map {
            $0.trimmingCharacters(in: " \t")
        }
        for text in lengths {
            guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int64(text)
            else { throw .invalidContentLength(String(text.prefix(100))) }
            guard value == length else { throw .contentLengthMismatch(expected: length, received: value) }
        }
        let tokens = values("connection").flatMap { $0.lowercased().split(separator: ",") }.map {
            $0.trimmingCharacters(in: " \t")
        }
        // HTTP/1.1 keeps the connection unless told otherwise; 1.0 only when told to. Without a
        // Content-Length the server may mean to close after the body: the connection is not reused.
        let reusable =
            !lengths.isEmpty && (isHTTP10 ? tokens.contains("keep-alive") : !tokens.contains("close"))
        phase = .body(remaining: length, reusable: reusable)
    }
}

/// `bytes first-last/complete` (RFC 9110 section 14.4), with `*` for an unknown complete length.
struct ContentRange: Hashable {
    var first: Int64
    var last: Int64
    var completeLength: Int64?

    init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count <= 100, bytes.starts(with: "bytes ".utf8),
            let dash = bytes.firstIndex(of: UInt8(ascii: "-")),
            let slash = bytes.firstIndex(of: UInt8(ascii: "/")),
            dash < slash, let first = Self.number(bytes[6..<dash]),
            let last = Self.number(bytes[(dash + 1)..<slash]),
            first <= last
        else { return nil }
        let complete = bytes[(slash + 1)...]
        if complete.elementsEqual("*".utf8) {
            completeLength = nil
        } else {
            guard let value = Self.number(complete), value > last else { return nil }
            completeLength = value
        }
        self.first = first
        self.last = last
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return digits.reduce(Int64(0)) { $0 * 10 + Int64($1 - 0x30) }
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

extension StringProtocol {
    /// Without leading and trailing characters from `set`.
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
