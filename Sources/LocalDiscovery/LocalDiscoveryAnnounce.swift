import TorrentModel

/// A BEP 14 announce: an HTTP-like request sent over UDP multicast saying that the sender takes
/// BitTorrent connections on `port` for each of `infoHashes`.
///
/// ```
/// BT-SEARCH * HTTP/1.1\r\n
/// Host: 239.192.152.143:6771\r\n        (over IPv6: [ff15::efc0:988f]:6771)
/// Port: 6881\r\n
/// Infohash: <40 hex digits>\r\n      (one or several, consecutive)
/// cookie: <opaque>\r\n               (optional)
/// \r\n
/// \r\n
/// ```
///
/// Decoding is strict about what it uses and bounded in everything: the datagram's size, its line
/// count, the infohashes kept. Headers it does not know are ignored, as BEP 14 asks; an `Infohash` that
/// is not 40 hex digits is skipped (another client's mistake in one torrent spoils none of the others).
public struct LocalDiscoveryAnnounce: Hashable, Sendable {
    /// The IPv4 group and port every BEP 14 client listens on.
    public static let groupAddress: (UInt8, UInt8, UInt8, UInt8) = (239, 192, 152, 143)
    public static let groupPort: UInt16 = 6771
    /// The IPv6 group (site-local scope), on the same port.
    public static let ipv6GroupAddress: [UInt8] = [
        0xff, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xef, 0xc0, 0x98, 0x8f,
    ]
    /// The `Host` header: the group the announce is sent to.
    public static let host = "239.192.152.143:6771"
    public static let ipv6Host = "[ff15::efc0:988f]:6771"
    /// BEP 14: a message with several infohashes should stay under this, to avoid fragmentation.
    public static let maximumEncodedBytes = 1400
    /// The largest datagram decoded (an Ethernet frame's UDP payload); longer ones are not announces.
    public static let maximumDecodedBytes = 1472
    /// Lines decoded at most, request line included: room for a full message of infohashes.
    public static let maximumLines = 48
    /// Infohashes kept from one message at most; the rest are ignored.
    public static let maximumInfoHashesDecoded = 32

    /// The sender's BitTorrent (TCP) port.
    public var port: UInt16
    public var infoHashes: [InfoHash]
    /// Lets a client recognise its own announces when multicast loops them back.
    public var cookie: String?

    public init(port: UInt16, infoHashes: [InfoHash], cookie: String? = nil) {
        self.port = port
        self.infoHashes = infoHashes
        self.cookie = cookie
    }

    /// Why a datagram was not taken as an announce.
    public enum DecodingError: Error, Hashable, Sendable {
        case tooLong(bytes: Int)
        case notText
        /// The first line is not `BT-SEARCH * HTTP/1.1`.
        case notSearch(firstLine: String)
        /// No empty line ends the headers within ``maximumLines``.
        case unterminated
        case missingPort
        case invalidPort(String)
        case noInfoHash
    }

    /// The bytes of the announce (infohashes in lower-case hex, as libtorrent sends them), naming the
    /// IPv4 group or, with `ipv6`, the IPv6 one.
    public func encoded(ipv6: Bool = false) -> [UInt8] {
        var text = "BT-SEARCH * HTTP/1.1\r\nHost: \(ipv6 ? Self.ipv6Host : Self.host)\r\nPort: \(port)\r\n"
        for infoHash in infoHashes { text += "Infohash: \(infoHash.hex)\r\n" }
        if let cookie { text += "cookie: \(cookie)\r\n" }
        text += "\r\n\r\n"
        return Array(text.utf8)
    }

    /// How many infohashes fit in one announce of at most ``maximumEncodedBytes`` with this cookie, to
    /// either group.
    public static func infoHashCapacity(cookie: String?) -> Int {
        let fixed = LocalDiscoveryAnnounce(port: 65535, infoHashes: [], cookie: cookie).encoded(ipv6: true)
            .count
        let perInfoHash = "Infohash: \r\n".utf8.count + 40
        return max(1, (maximumEncodedBytes - fixed) / perInfoHash)
    }

    /// Decodes a received datagram.
    public init(decoding bytes: some Collection<UInt8>) throws(DecodingError) {
        guard bytes.count <= Self.maximumDecodedBytes else { throw .tooLong(bytes: bytes.count) }
        // Lines are split on bytes: in a Swift string "\r\n" is one character, not two.
        let bytes = Array(bytes)
        var lines: [Substring] = []
        var terminated = false
        // What follows the last line feed is no line: a header end must be a whole empty line.
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            // CRLF is the standard; a bare LF is taken too, as HTTP parsers do.
            let trimmed = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            if trimmed.isEmpty {
                terminated = !lines.isEmpty
                break
            }
            guard lines.count < Self.maximumLines else { throw .unterminated }
            guard let text = String(validating: trimmed, as: UTF8.self) else { throw .notText }
            lines.append(text[...])
        }
        guard terminated else { throw .unterminated }
        let requestLine = lines[0].split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[0].lowercased() == "bt-search", requestLine[1] == "*",
            requestLine[2].hasPrefix("HTTP/1.")
        else { throw .notSearch(firstLine: String(lines[0].prefix(64))) }

        var port: UInt16?
        var infoHashes: [InfoHash] = []
        var cookie: String?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces
            switch name {
            case "port":
                // Digits only: `UInt16("+1")` would take a sign.
                guard value.allSatisfy(\.isASCIIDigit), let number = UInt16(value), number != 0 else {
                    throw .invalidPort(String(value.prefix(16)))
                }
                port = number
            case "infohash":
                guard infoHashes.count < Self.maximumInfoHashesDecoded, value.utf8.count == 40,
                    let infoHash = InfoHash(hex: value)
                else { continue }
                infoHashes.append(infoHash)
            case "cookie":
                cookie = String(value)
            default:
                continue
            }
        }
        guard let port else { throw .missingPort }
        guard !infoHashes.isEmpty else { throw .noInfoHash }
        self.init(port: port, infoHashes: infoHashes, cookie: cookie)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var value = self
        while let first = value.first, first == " " || first == "\t" { value = value.dropFirst() }
        while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
        return value
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
