/// Everything that can go wrong fetching a range from a web seed (BEP 19). Each case carries what was
/// expected and what arrived, so one log line tells why a seed was dropped or paused.
public enum WebSeedError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformedStatusLine
    case malformedHeaderLine
    case headersTooLarge(limit: Int)
    case tooManyHeaders(limit: Int)
    case invalidContentLength(String)
    /// Chunked or compressed framing: a range answer has no reason for it, so it is refused, not decoded.
    case unsupportedTransferEncoding(String)
    case unsupportedContentEncoding(String)
    /// 200 for a range that is not the whole file: the server ignores `Range`, and would send the whole
    /// file for every piece.
    case rangeIgnored(requested: Range<Int64>, fileLength: Int64)
    /// 206 whose `Content-Range` is not the range asked for (or names another file length).
    case contentRangeMismatch(expected: String, received: String)
    case contentLengthMismatch(expected: Int64, received: Int64)
    /// An answer other than 200, 206, a redirect or "busy".
    case status(code: Int, reason: String)
    case redirectWithoutLocation(code: Int)
    case invalidRedirect(location: String, reason: String)
    case tooManyRedirects(limit: Int)
    /// The connection ended before the whole body arrived.
    case truncated(receivedBytes: Int64, expectedBytes: Int64)
    /// TLS with an `https` seed failed: a certificate that cannot be verified for its host, a broken
    /// session. Trying again would meet the same certificate.
    case tls(origin: String, reason: String)

    /// Whether the seed is of no use (it breaks the protocol, lacks the file, ignores ranges) and is
    /// dropped, rather than tried again after a back-off (a dropped connection, a server error).
    public var dropsSeed: Bool {
        switch self {
        case .truncated: false
        case .status(let code, _): !(500...599).contains(code)
        default: true
        }
    }

    public var description: String {
        switch self {
        case .malformedStatusLine: "malformed status line"
        case .malformedHeaderLine: "malformed header line"
        case .headersTooLarge(let limit): "headers larger than \(limit) bytes"
        case .tooManyHeaders(let limit): "more than \(limit) headers"
        case .invalidContentLength(let value): "invalid Content-Length '\(value)'"
        case .unsupportedTransferEncoding(let value): "unsupported Transfer-Encoding '\(value)'"
        case .unsupportedContentEncoding(let value): "unsupported Content-Encoding '\(value)'"
        case .rangeIgnored(let requested, let fileLength):
            "answered 200 (the whole file of \(fileLength) bytes) to a request for bytes "
                + "\(requested.lowerBound)-\(requested.upperBound - 1): the server ignores ranges"
        case .contentRangeMismatch(let expected, let received):
            "Content-Range '\(received)' for a request of '\(expected)'"
        case .contentLengthMismatch(let expected, let received):
            "Content-Length \(received) where \(expected) was asked for"
        case .status(let code, let reason): "HTTP \(code) \(reason)"
        case .redirectWithoutLocation(let code): "redirect \(code) without Location"
        case .invalidRedirect(let location, let reason): "redirect to '\(location)': \(reason)"
        case .tooManyRedirects(let limit): "more than \(limit) redirects"
        case .truncated(let received, let expected):
            "connection closed after \(received) of \(expected) body bytes"
        case .tls(let origin, let reason): "TLS with \(origin): \(reason)"
        }
    }
}
