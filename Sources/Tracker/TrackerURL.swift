/// A parsed tracker URL: `http://`, `https://` or `udp://`.
///
/// Only what a tracker client needs is kept: the scheme, the host, the port and the request target (path
/// and query, as sent on the request line). The fragment is dropped because it is never sent. Spaces,
/// control bytes and non-ASCII bytes are refused rather than escaped, because they would otherwise end up
/// on an HTTP request line.
public struct TrackerURL: Hashable, Sendable, CustomStringConvertible {
    /// The transports a tracker can be reached by.
    public enum Scheme: String, Hashable, Sendable {
        case http
        case https
        case udp

        /// 80, 443, or nil for UDP, which has no default port.
        public var defaultPort: UInt16? {
            switch self {
            case .http: 80
            case .https: 443
            case .udp: nil
            }
        }
    }

    /// The host of a URL: a DNS name (lower-cased) or an address literal.
    public enum Host: Hashable, Sendable, CustomStringConvertible {
        case name(String)
        case ipv4(IPv4Address)
        case ipv6(IPv6Address)

        /// As written in a URL or a `Host` header: IPv6 literals in brackets.
        public var description: String {
            switch self {
            case .name(let name): name
            case .ipv4(let address): address.description
            case .ipv6(let address): "[\(address)]"
            }
        }
    }

    /// The longest URL accepted, in bytes.
    public static let maxByteCount = 4096

    /// How to reach the tracker.
    public var scheme: Scheme
    /// The host to connect to (and to name in the `Host` header).
    public var host: Host
    /// The port, the scheme's default when the URL gives none.
    public var port: UInt16
    /// The path, starting with `/`, without the query.
    public var path: String
    /// The query without its `?`, or nil if the URL has none. An empty query (`/a?`) is `""`.
    public var query: String?

    /// Whether the I/O layer must wrap the connection in TLS.
    public var requiresTLS: Bool { scheme == .https }

    /// What goes on the HTTP request line: the path and, if present, `?` and the query.
    public var requestTarget: String { query.map { "\(path)?\($0)" } ?? path }

    /// The `Host` header value: the host, plus the port when it is not the scheme's default.
    public var hostHeader: String {
        port == scheme.defaultPort ? host.description : "\(host):\(port)"
    }

    /// Parses `text`; throws ``TrackerError/invalidURL(url:problem:)`` with the reason.
    public init(_ text: String) throws(TrackerError) {
        do {
            self = try Self.parse(Array(text.utf8))
        } catch {
            throw .invalidURL(url: String(text.prefix(200)), problem: error)
        }
    }

    init(scheme: Scheme, host: Host, port: UInt16, path: String, query: String?) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query
    }

    public var description: String {
        let portText = port == scheme.defaultPort ? "" : ":\(port)"
        return "\(scheme.rawValue)://\(host)\(portText)\(requestTarget)"
    }

    /// This URL with `parameters` (already encoded, `a=1&b=2`) added to its query, after any query the
    /// tracker URL already had (private trackers put passkeys there).
    public func appendingQuery(_ parameters: String) -> TrackerURL {
        var url = self
        if let query, !query.isEmpty {
            url.query = query.hasSuffix("&") ? query + parameters : query + "&" + parameters
        } else {
            url.query = parameters
        }
        return url
    }

    /// Resolves a `Location` header against this URL (RFC 3986 section 5.2, without dot-segment
    /// removal, which trackers do not need): absolute, scheme-relative (`//host/p`), absolute-path
    /// (`/p`), query-only (`?q`) or relative-path (`p`).
    public func resolving(_ reference: String) throws(TrackerError) -> TrackerURL {
        let bytes = Array(reference.utf8)
        func fail(_ problem: URLProblem) -> TrackerError {
            .invalidRedirect(location: String(reference.prefix(200)), problem: problem)
        }
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
            bytes[..<colon].allSatisfy({ Self.isSchemeByte($0) }), colon > 0
        {
            do { return try Self.parse(bytes) } catch { throw fail(error) }
        }
        if bytes.starts(with: "//".utf8) {
            do { return try Self.parse(Array("\(scheme.rawValue):".utf8) + bytes) } catch {
                throw fail(error)
            }
        }
        let base = "\(scheme.rawValue)://\(hostHeader)"
        let target: String
        if bytes.first == UInt8(ascii: "/") {
            target = reference
        } else if bytes.first == UInt8(ascii: "?") {
            target = path + reference
        } else {
            let directory = path[...(path.lastIndex(of: "/") ?? path.startIndex)]
            target = directory + reference
        }
        do { return try Self.parse(Array((base + target).utf8)) } catch { throw fail(error) }
    }

    private static func isSchemeByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."):
            true
        default: false
        }
    }

    private static func parse(_ bytes: [UInt8]) throws(URLProblem) -> TrackerURL {
        guard bytes.count <= maxByteCount else { throw .tooLong(byteCount: bytes.count, limit: maxByteCount) }
        if let bad = bytes.first(where: { $0 <= 0x20 || $0 >= 0x7f }) { throw .forbiddenCharacter(bad) }
        guard let separator = bytes.firstRange(of: "://".utf8) else { throw .unsupportedScheme("") }
        let schemeText = String(decoding: bytes[..<separator.lowerBound], as: UTF8.self).lowercased()
        guard let scheme = Scheme(rawValue: schemeText) else { throw .unsupportedScheme(schemeText) }

        var rest = bytes[separator.upperBound...]
        if let hash = rest.firstIndex(of: UInt8(ascii: "#")) { rest = rest[..<hash] }
        let authorityEnd =
            rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let target = rest[authorityEnd...]
        guard !authority.contains(UInt8(ascii: "@")) else { throw .userInfoNotAllowed }

        let (host, portText) = try splitHostAndPort(authority)
        let port: UInt16
        if let portText {
            guard let value = parsePort(portText) else {
                throw .invalidPort(String(decoding: portText, as: UTF8.self))
            }
            port = value
        } else {
            guard let defaultPort = scheme.defaultPort else { throw .invalidPort("") }
            port = defaultPort
        }

        var path = target
        var query: String?
        if let mark = target.firstIndex(of: UInt8(ascii: "?")) {
            path = target[..<mark]
            query = String(decoding: target[(mark + 1)...], as: UTF8.self)
        }
        let pathText = path.isEmpty ? "/" : String(decoding: path, as: UTF8.self)
        return TrackerURL(scheme: scheme, host: host, port: port, path: pathText, query: query)
    }

    private static func splitHostAndPort(
        _ authority: ArraySlice<UInt8>
    ) throws(URLProblem) -> (
        Host, ArraySlice<UInt8>?
    ) {
        guard !authority.isEmpty else { throw .missingHost }
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else {
                throw .invalidHost(String(decoding: authority, as: UTF8.self))
            }
            let literal = authority[(authority.startIndex + 1)..<close]
            guard let address = IPv6Address(String(decoding: literal, as: UTF8.self)) else {
                throw .invalidHost(String(decoding: literal, as: UTF8.self))
            }
            let after = authority[(close + 1)...]
            if after.isEmpty { return (.ipv6(address), nil) }
            guard after.first == UInt8(ascii: ":") else {
                throw .invalidHost(String(decoding: authority, as: UTF8.self))
            }
            return (.ipv6(address), after.dropFirst())
        }
        var hostBytes = authority
        var portText: ArraySlice<UInt8>?
        if let colon = authority.lastIndex(of: UInt8(ascii: ":")) {
            hostBytes = authority[..<colon]
            portText = authority[(colon + 1)...]
        }
        let hostText = String(decoding: hostBytes, as: UTF8.self).lowercased()
        guard !hostText.isEmpty else { throw .missingHost }
        if let address = IPv4Address(hostText) { return (.ipv4(address), portText) }
        guard isValidHostName(hostText) else { throw .invalidHost(hostText) }
        return (.name(hostText), portText)
    }

    private static func parsePort(_ text: ArraySlice<UInt8>) -> UInt16? {
        guard (1...5).contains(text.count), text.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let value = text.reduce(0) { $0 * 10 + Int($1 - 48) }
        guard (1...65535).contains(value) else { return nil }
        return UInt16(value)
    }
}

/// Whether `name` is a plausible DNS name: labels of letters, digits, `-` and `_` (some trackers use it),
/// 1 to 63 bytes each, 253 bytes in all.
func isValidHostName(_ name: String) -> Bool {
    let utf8 = Array(name.utf8)
    guard !utf8.isEmpty, utf8.count <= 253 else { return false }
    for label in utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
        guard (1...63).contains(label.count) else { return false }
        for byte in label {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            default: return false
            }
        }
    }
    return true
}
