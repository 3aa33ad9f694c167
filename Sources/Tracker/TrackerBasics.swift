import TorrentModel

/// Bounds on everything a tracker sends us. Trackers are outside input: a broken or hostile one must not
/// make us allocate without limit or announce in a tight loop.
public struct TrackerLimits: Hashable, Sendable {
    /// The largest bencoded response body accepted, in bytes.
    public var maxResponseBytes: Int
    /// The most peers (IPv4 and IPv6 together, valid or not) one response may list.
    public var maxPeerCount: Int
    /// Announce intervals from the tracker are clamped into this range, in seconds.
    public var intervalSecondsRange: ClosedRange<Int64>
    /// The longest failure reason, warning or UDP error message kept, in bytes; longer ones are cut.
    public var maxMessageBytes: Int
    /// The longest `tracker id` accepted, in bytes.
    public var maxTrackerIDBytes: Int
    /// The most torrents one scrape response may describe.
    public var maxScrapeEntryCount: Int

    /// - Parameters:
    ///   - maxResponseBytes: 1 MiB; an announce answer with 1,000 dictionary peers is under 100 KiB.
    ///   - maxPeerCount: 1,000; trackers cap `numwant` at about 200.
    ///   - intervalSecondsRange: one minute to one day; real trackers ask for 15 to 60 minutes.
    ///   - maxMessageBytes: 1 KiB, plenty for a human-readable reason.
    ///   - maxTrackerIDBytes: 256.
    ///   - maxScrapeEntryCount: 10,000.
    public init(
        maxResponseBytes: Int = 1 << 20, maxPeerCount: Int = 1000,
        intervalSecondsRange: ClosedRange<Int64> = 60...86_400, maxMessageBytes: Int = 1024,
        maxTrackerIDBytes: Int = 256, maxScrapeEntryCount: Int = 10_000
    ) {
        self.maxResponseBytes = maxResponseBytes
        self.maxPeerCount = maxPeerCount
        self.intervalSecondsRange = intervalSecondsRange
        self.maxMessageBytes = maxMessageBytes
        self.maxTrackerIDBytes = maxTrackerIDBytes
        self.maxScrapeEntryCount = maxScrapeEntryCount
    }

    /// Cuts `bytes` to `maxMessageBytes` and decodes it, replacing invalid UTF-8.
    func message(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.prefix(max(0, maxMessageBytes)), as: UTF8.self)
    }

    /// An interval from the tracker, clamped into `intervalSecondsRange`.
    func clampedInterval(_ seconds: Int64) -> Int64 {
        min(max(seconds, intervalSecondsRange.lowerBound), intervalSecondsRange.upperBound)
    }
}

/// The `event` of an announce (BEP 3; BEP 15 numbers them differently, see ``udpValue``).
public enum AnnounceEvent: Hashable, Sendable, CustomStringConvertible {
    /// A regular re-announce.
    case none
    /// The first announce of a session.
    case started
    /// The download finished (sent once, and never if the torrent was complete at start).
    case completed
    /// The client is leaving the swarm.
    case stopped

    /// The HTTP query value, or nil for ``none`` (the parameter is then omitted).
    public var httpValue: String? {
        switch self {
        case .none: nil
        case .started: "started"
        case .completed: "completed"
        case .stopped: "stopped"
        }
    }

    /// BEP 15: 0 none, 1 completed, 2 started, 3 stopped.
    public var udpValue: UInt32 {
        switch self {
        case .none: 0
        case .completed: 1
        case .started: 2
        case .stopped: 3
        }
    }

    public var description: String { httpValue ?? "none" }
}

/// An IPv4 address.
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    /// The address in host order (`0x7f000001` is 127.0.0.1).
    public var value: UInt32

    /// An address from its 32-bit value in host order.
    public init(_ value: UInt32) { self.value = value }

    /// Four bytes in network order (missing bytes count as zero).
    public init(bytes: some Collection<UInt8>) {
        let padded = Array(bytes.prefix(4)) + Array(repeating: 0, count: max(0, 4 - bytes.count))
        self.value = padded.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Strict dotted-quad text (`10.0.0.1`): four decimal parts, no leading zeros, each at most 255.
    public init?(_ text: some StringProtocol) {
        var value: UInt32 = 0
        var partCount = 0
        for part in text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard part.count >= 1, part.count <= 3, part.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                return nil
            }
            if part.count > 1 && part.first == UInt8(ascii: "0") { return nil }
            let number = part.reduce(0) { $0 * 10 + UInt32($1 - 48) }
            guard number <= 255 else { return nil }
            value = value << 8 | number
            partCount += 1
        }
        guard partCount == 4 else { return nil }
        self.value = value
    }

    /// The four bytes in network order.
    public var bytes: [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    public var description: String { bytes.map { String($0) }.joined(separator: ".") }
}

/// An IPv6 address.
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
    /// The first eight bytes, big-endian.
    public var high: UInt64
    /// The last eight bytes, big-endian.
    public var low: UInt64

    /// An address from its two big-endian halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Sixteen bytes in network order (missing bytes count as zero).
    public init(bytes: some Collection<UInt8>) {
        let all = Array(bytes.prefix(16)) + Array(repeating: 0, count: max(0, 16 - bytes.count))
        high = all[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = all[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// RFC 4291 text: eight groups of up to four hex digits, at most one `::`, an optional dotted IPv4
    /// tail. No zone index.
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty, utf8.count <= 45, let halves = Self.splitAtDoubleColon(utf8) else { return nil }
        let groups: [UInt16]
        if halves.count == 2 {
            guard let head = Self.groups(halves[0], mayEndWithIPv4: false),
                let tail = Self.groups(halves[1], mayEndWithIPv4: true), head.count + tail.count <= 7
            else { return nil }
            groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = Self.groups(halves[0], mayEndWithIPv4: true), all.count == 8 else { return nil }
            groups = all
        }
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// Splits at the one `::`; nil if there is more than one.
    private static func splitAtDoubleColon(_ utf8: [UInt8]) -> [ArraySlice<UInt8>]? {
        var index = 0
        var found: Int?
        while index + 1 < utf8.count {
            if utf8[index] == UInt8(ascii: ":") && utf8[index + 1] == UInt8(ascii: ":") {
                guard found == nil else { return nil }
                found = index
                index += 2
            } else {
                index += 1
            }
        }
        guard let found else { return [utf8[...]] }
        return [utf8[..<found], utf8[(found + 2)...]]
    }

    /// Parses colon-separated hex groups; an empty input is no groups.
    private static func groups(_ text: ArraySlice<UInt8>, mayEndWithIPv4: Bool) -> [UInt16]? {
        guard !text.isEmpty else { return [] }
        let parts = text.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        var out: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if part.contains(UInt8(ascii: ".")) {
                guard mayEndWithIPv4, index == parts.count - 1,
                    let v4 = IPv4Address(String(decoding: part, as: UTF8.self))
                else { return nil }
                out.append(UInt16(v4.value >> 16))
                out.append(UInt16(v4.value & 0xffff))
                continue
            }
            guard part.count >= 1, part.count <= 4 else { return nil }
            var value: UInt16 = 0
            for byte in part {
                guard let digit = hexDigit(byte) else { return nil }
                value = value << 4 | UInt16(digit)
            }
            out.append(value)
        }
        return out
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The sixteen bytes in network order.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    /// RFC 5952 text: lower-case, no leading zeros, the first longest run of two or more zero groups
    /// written as `::`.
    public var description: String {
        let groups =
            (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * $0)) }
            + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * $0)) }
        var bestStart = -1
        var bestLength = 1
        var runStart = -1
        for index in 0...8 {
            if index < 8 && groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength {
                    bestStart = runStart
                    bestLength = index - runStart
                }
                runStart = -1
            }
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestStart >= 0 else { return hex.joined(separator: ":") }
        let before = hex[..<bestStart].joined(separator: ":")
        let after = hex[(bestStart + bestLength)...].joined(separator: ":")
        return before + "::" + after
    }
}

/// Where a tracker says a peer can be reached.
public enum PeerHost: Hashable, Sendable, CustomStringConvertible {
    case ipv4(IPv4Address)
    case ipv6(IPv6Address)
    /// BEP 3 lets a dictionary-form peer give a DNS name; resolving it is the I/O layer's business.
    case name(String)

    public var description: String {
        switch self {
        case .ipv4(let address): address.description
        case .ipv6(let address): "[\(address)]"
        case .name(let name): name
        }
    }
}

/// One peer from a tracker response.
public struct TrackerPeer: Hashable, Sendable, CustomStringConvertible {
    /// The peer's address or DNS name.
    public var host: PeerHost
    /// Never 0 in parsed responses: peers with port 0 are dropped.
    public var port: UInt16
    /// Only dictionary-form peers carry one.
    public var peerID: PeerID?

    /// A peer from its parts.
    public init(host: PeerHost, port: UInt16, peerID: PeerID? = nil) {
        self.host = host
        self.port = port
        self.peerID = peerID
    }

    public var description: String { "\(host):\(port)" }
}

/// The address family of a UDP tracker's socket, which decides the peer list format (BEP 15).
public enum AddressFamily: Hashable, Sendable {
    case ipv4
    case ipv6

    /// Bytes per compact peer entry: 4 or 16 address bytes plus a 2-byte port.
    public var compactPeerByteCount: Int { self == .ipv4 ? 6 : 18 }
}

/// Decodes compact peers (BEP 23 `peers`, BEP 7 `peers6`, BEP 15 announce responses). Entries with port
/// 0 are recorded in `skipped` instead. A partial entry at the end is ignored: callers check the length
/// first, because only they know what to report.
func decodeCompactPeers(
    _ bytes: ArraySlice<UInt8>, family: AddressFamily, into peers: inout [TrackerPeer],
    skipped: inout [TrackerError]
) {
    let stride = family.compactPeerByteCount
    var offset = bytes.startIndex
    while offset + stride <= bytes.endIndex {
        let addressEnd = offset + stride - 2
        let port = UInt16(bytes[addressEnd]) << 8 | UInt16(bytes[addressEnd + 1])
        let host: PeerHost =
            family == .ipv4
            ? .ipv4(IPv4Address(bytes: bytes[offset..<addressEnd]))
            : .ipv6(IPv6Address(bytes: bytes[offset..<addressEnd]))
        if port == 0 {
            skipped.append(.peerPortZero(peer: host.description))
        } else {
            peers.append(TrackerPeer(host: host, port: port))
        }
        offset += stride
    }
}
