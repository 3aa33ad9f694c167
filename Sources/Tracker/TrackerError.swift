import Bencode

/// Why a tracker URL was refused.
public enum URLProblem: Error, Hashable, Sendable, CustomStringConvertible {
    /// Only `http`, `https` and `udp` trackers are spoken.
    case unsupportedScheme(String)
    case missingHost
    case invalidHost(String)
    /// Not a number in 1...65535, or missing where the scheme has no default (UDP).
    case invalidPort(String)
    /// `user:password@` is refused: it would be sent nowhere and hides the real host from a reader.
    case userInfoNotAllowed
    /// Spaces, control bytes and non-ASCII bytes could split or forge request lines.
    case forbiddenCharacter(UInt8)
    case tooLong(byteCount: Int, limit: Int)

    public var description: String {
        switch self {
        case .unsupportedScheme(let scheme): "unsupported scheme '\(scheme)'"
        case .missingHost: "no host"
        case .invalidHost(let host): "invalid host '\(host)'"
        case .invalidPort(let port): "invalid port '\(port)'"
        case .userInfoNotAllowed: "user information in URL"
        case .forbiddenCharacter(let byte): "forbidden byte 0x\(String(byte, radix: 16))"
        case .tooLong(let count, let limit): "\(count) bytes long, limit \(limit)"
        }
    }
}

/// Why an HTTP response could not be read.
public enum HTTPProblem: Hashable, Sendable, CustomStringConvertible {
    case malformedStatusLine
    case malformedHeaderLine
    /// Not a decimal number, or two different values.
    case invalidContentLength
    case invalidChunkSize
    /// A chunk's data was not followed by CRLF.
    case missingChunkTerminator
    /// A transfer coding other than `chunked` (we ask for identity and cannot undo anything else).
    case unsupportedTransferEncoding(String)
    case headersTooLarge(limit: Int)
    case tooManyHeaders(limit: Int)
    case bodyTooLarge(limit: Int)
    /// The connection closed before the response was complete.
    case truncated(receivedBodyBytes: Int)

    public var description: String {
        switch self {
        case .malformedStatusLine: "malformed status line"
        case .malformedHeaderLine: "malformed header line"
        case .invalidContentLength: "invalid Content-Length"
        case .invalidChunkSize: "invalid chunk size"
        case .missingChunkTerminator: "chunk data not followed by CRLF"
        case .unsupportedTransferEncoding(let coding): "unsupported Transfer-Encoding '\(coding)'"
        case .headersTooLarge(let limit): "headers larger than \(limit) bytes"
        case .tooManyHeaders(let limit): "more than \(limit) headers"
        case .bodyTooLarge(let limit): "body larger than \(limit) bytes"
        case .truncated(let count): "connection closed after \(count) body bytes, before the end"
        }
    }
}

/// Everything that can go wrong talking to a tracker. Each case carries enough context to tell a broken
/// tracker from a hostile one in a log line.
public enum TrackerError: Error, Hashable, Sendable, CustomStringConvertible {
    // Announce and scrape responses (HTTP, bencoded).
    /// The tracker answered with `failure reason` (or BEP 15's error packet).
    case trackerFailure(reason: String)
    case responseTooLarge(byteCount: Int, limit: Int)
    case malformedBencode(BencodeError)
    /// The response (or an entry that must be a dictionary) is some other kind of value.
    case notADictionary(context: String)
    case missingKey(String)
    case wrongType(key: String, expected: BencodeKind, found: BencodeKind)
    /// An integer that cannot be what it claims (a negative count, a port above 65535).
    case valueOutOfRange(key: String, value: Int64)
    /// A compact peer string whose length is not a multiple of the entry size.
    case compactLengthNotMultiple(key: String, byteCount: Int, stride: Int)
    case tooManyPeers(count: Int, limit: Int)
    case tooManyScrapeEntries(count: Int, limit: Int)
    case trackerIDTooLong(byteCount: Int, limit: Int)
    /// A scrape `files` key that is not a 20-byte infohash.
    case invalidInfoHashKey(byteCount: Int)

    // Individual peers, which are skipped rather than failing the response (see `skippedPeers`).
    case peerPortZero(peer: String)
    case invalidPeerAddress(String)
    case invalidPeerID(byteCount: Int)
    case malformedPeerEntry(index: Int)

    // URLs.
    case invalidURL(url: String, problem: URLProblem)
    /// BEP 48: the announce URL's last path segment does not start with `announce`.
    case scrapeNotSupported(url: String)

    // HTTP transport.
    case http(HTTPProblem)
    /// A final response whose status is not 2xx.
    case httpStatus(code: Int, reason: String)
    case redirectWithoutLocation(code: Int)
    case invalidRedirect(location: String, problem: URLProblem)
    case tooManyRedirects(limit: Int)

    // UDP (BEP 15).
    case udpPacketTooShort(action: UInt32, byteCount: Int, minimum: Int)
    /// No answer after the last retransmission.
    case udpTimedOut(sendCount: Int)
    /// BEP 15 fits about 74 infohashes in one scrape packet.
    case tooManyInfoHashes(count: Int, limit: Int)
    /// A UDP client was asked to talk to an `http(s)` URL or the other way round.
    case wrongTransport(url: String)
    /// A UDP packet whose action is none of BEP 15's four.
    case udpUnknownAction(UInt32)

    public var description: String {
        switch self {
        case .trackerFailure(let reason): "tracker failure: \(reason)"
        case .responseTooLarge(let count, let limit): "response of \(count) bytes exceeds \(limit)"
        case .malformedBencode(let error): "malformed bencode: \(error)"
        case .notADictionary(let context): "\(context) is not a dictionary"
        case .missingKey(let key): "missing key '\(key)'"
        case .wrongType(let key, let expected, let found): "'\(key)' is \(found), expected \(expected)"
        case .valueOutOfRange(let key, let value): "'\(key)' has impossible value \(value)"
        case .compactLengthNotMultiple(let key, let count, let stride):
            "'\(key)' is \(count) bytes, not a multiple of \(stride)"
        case .tooManyPeers(let count, let limit): "\(count) peers, limit \(limit)"
        case .tooManyScrapeEntries(let count, let limit): "\(count) scrape entries, limit \(limit)"
        case .trackerIDTooLong(let count, let limit): "tracker id of \(count) bytes, limit \(limit)"
        case .invalidInfoHashKey(let count): "scrape key of \(count) bytes is not an infohash"
        case .peerPortZero(let peer): "peer \(peer) has port 0"
        case .invalidPeerAddress(let text): "invalid peer address '\(text)'"
        case .invalidPeerID(let count): "peer id of \(count) bytes"
        case .malformedPeerEntry(let index): "peer entry \(index) is malformed"
        case .invalidURL(let url, let problem): "invalid tracker URL '\(url)': \(problem)"
        case .scrapeNotSupported(let url): "no scrape URL can be derived from '\(url)'"
        case .http(let problem): "HTTP: \(problem)"
        case .httpStatus(let code, let reason): "HTTP status \(code) \(reason)"
        case .redirectWithoutLocation(let code): "HTTP \(code) redirect without Location"
        case .invalidRedirect(let location, let problem): "redirect to '\(location)': \(problem)"
        case .tooManyRedirects(let limit): "more than \(limit) redirects"
        case .udpPacketTooShort(let action, let count, let minimum):
            "UDP action \(action) packet of \(count) bytes, at least \(minimum) needed"
        case .udpTimedOut(let count): "no UDP answer after \(count) sends"
        case .tooManyInfoHashes(let count, let limit): "\(count) infohashes in one scrape, limit \(limit)"
        case .wrongTransport(let url): "'\(url)' uses another transport"
        case .udpUnknownAction(let action): "unknown UDP action \(action)"
        }
    }
}
