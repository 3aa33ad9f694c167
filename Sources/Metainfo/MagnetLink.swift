import Hashing
import TorrentModel

/// Why a magnet link was rejected.
public enum MagnetError: Error, Hashable, Sendable {
    /// The text does not start with `magnet:?`.
    case notAMagnetLink
    /// No `xt` parameter with a `urn:btih:` or `urn:btmh:` value.
    case missingInfoHash
    /// An `xt` value that is not 40 hex digits, 32 base32 characters, or a SHA-256 multihash.
    case invalidInfoHash(String)
    /// Two `xt` parameters of the same kind with different hashes.
    case conflictingInfoHashes
    /// A `%` not followed by two hex digits.
    case invalidPercentEncoding(String)
    /// A parameter value that does not decode to UTF-8.
    case invalidUTF8(parameter: String)
    /// An `x.pe` value that is not `host:port`, `ipv4:port` or `[ipv6]:port`.
    case invalidPeerAddress(String)
    /// An `so` value that is not a comma-separated list of indices and `first-last` ranges.
    case invalidSelectOnly(String)
    /// A parameter without `=`.
    case malformedParameter(String)
}

/// A peer address from `x.pe`.
public struct MagnetPeer: Hashable, Sendable, CustomStringConvertible {
    /// A host name, IPv4 literal, or IPv6 literal (without brackets).
    public let host: String
    /// The TCP/uTP port (never 0).
    public let port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 literal.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A BitTorrent magnet link (BEP 9; BEP 52 for v2 `btmh`; BEP 53 for `so`).
public struct MagnetLink: Hashable, Sendable {
    /// `xt=urn:btih:` (hex or base32).
    public var infoHashV1: InfoHash?
    /// `xt=urn:btmh:1220…` (a SHA-256 multihash).
    public var infoHashV2: SHA256Digest?
    /// `dn`: a name to show until the metadata arrives.
    public var displayName: String?

    /// The 20-byte id peers know the torrent by (as ``Metainfo/wireInfoHash``): the v1 infohash, or the
    /// v2 one cut to 20 bytes for a v2-only link.
    public var wireInfoHash: InfoHash? { infoHashV1 ?? infoHashV2.map(InfoHash.init(truncatingV2:)) }
    /// `tr`: tracker URLs, in order.
    public var trackers: [String]
    /// `ws`: web seed URLs.
    public var webSeeds: [String]
    /// `x.pe`: peers to contact directly.
    public var peers: [MagnetPeer]
    /// `so`: the file indices to download, as inclusive ranges; empty means all files.
    public var selectedFiles: [ClosedRange<Int>]

    public init(
        infoHashV1: InfoHash? = nil, infoHashV2: SHA256Digest? = nil, displayName: String? = nil,
        trackers: [String] = [], webSeeds: [String] = [], peers: [MagnetPeer] = [],
        selectedFiles: [ClosedRange<Int>] = []
    ) {
        self.infoHashV1 = infoHashV1
        self.infoHashV2 = infoHashV2
        self.displayName = displayName
        self.trackers = trackers
        self.webSeeds = webSeeds
        self.peers = peers
        self.selectedFiles = selectedFiles
    }

    /// The most select-only entries accepted; a link is typed or pasted, so this is generous.
    static let maxSelectOnlyEntries = 10_000

    /// Parses a magnet URI. Unknown parameters are ignored; `+` in values decodes to a space, as in HTML
    /// forms, because links in the wild write names that way.
    public init(parsing text: String) throws(MagnetError) {
        let prefix = "magnet:?"
        // The scheme is case-insensitive (RFC 3986).
        let lowered = text.utf8.prefix(prefix.utf8.count).map {
            $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0
        }
        guard lowered.elementsEqual(prefix.utf8) else {
            throw .notAMagnetLink
        }
        self.init()
        let query = text.utf8.dropFirst(prefix.utf8.count)
        var sawInfoHash = false
        for rawParameter in query.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard let equals = rawParameter.firstIndex(of: UInt8(ascii: "=")) else {
                throw .malformedParameter(String(decoding: rawParameter, as: UTF8.self))
            }
            let key = String(decoding: rawParameter[..<equals], as: UTF8.self)
            let value = try Self.percentDecode(
                rawParameter[rawParameter.index(after: equals)...], parameter: key)
            switch key {
            case "xt":
                if try addExactTopic(value) { sawInfoHash = true }
            case "dn":
                if displayName == nil { displayName = value }
            case "tr":
                trackers.append(value)
            case "ws":
                webSeeds.append(value)
            case "x.pe":
                peers.append(try Self.parsePeer(value))
            case "so":
                selectedFiles.append(contentsOf: try Self.parseSelectOnly(value))
            default:
                // Numbered variants (`tr.1`) appear in the wild.
                if key.hasPrefix("tr.") { trackers.append(value) }
            }
        }
        guard sawInfoHash else { throw .missingInfoHash }
    }

    /// Records a `urn:btih:` or `urn:btmh:` topic; returns false for other URNs, which are ignored.
    private mutating func addExactTopic(_ value: String) throws(MagnetError) -> Bool {
        let lowered = value.lowercased()
        if lowered.hasPrefix("urn:btih:") {
            let encoded = String(value.dropFirst("urn:btih:".count))
            let bytes: [UInt8]?
            switch encoded.utf8.count {
            case 40: bytes = Hex.decode(encoded)
            case 32: bytes = Base32.decode(encoded)
            default: bytes = nil
            }
            guard let bytes, let hash = InfoHash(bytes) else { throw .invalidInfoHash(value) }
            if let infoHashV1, infoHashV1 != hash { throw .conflictingInfoHashes }
            infoHashV1 = hash
            return true
        }
        if lowered.hasPrefix("urn:btmh:") {
            // A multihash: 0x12 (sha2-256), 0x20 (32 bytes), then the digest.
            let encoded = String(value.dropFirst("urn:btmh:".count))
            guard encoded.utf8.count == 68, let bytes = Hex.decode(encoded), bytes[0] == 0x12,
                bytes[1] == 0x20,
                let hash = SHA256Digest(bytes: bytes[2...])
            else { throw .invalidInfoHash(value) }
            if let infoHashV2, infoHashV2 != hash { throw .conflictingInfoHashes }
            infoHashV2 = hash
            return true
        }
        return false
    }

    static func percentDecode(
        _ bytes: some Collection<UInt8>, parameter: String
    ) throws(MagnetError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next(), let low = iterator.next(),
                    let decoded = Hex.decode(String(decoding: [high, low], as: UTF8.self)), decoded.count == 1
                else { throw .invalidPercentEncoding(String(decoding: bytes, as: UTF8.self)) }
                out.append(decoded[0])
            case UInt8(ascii: "+"):
                out.append(UInt8(ascii: " "))
            default:
                out.append(byte)
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw .invalidUTF8(parameter: parameter)
        }
        return text
    }

    static func parsePeer(_ value: String) throws(MagnetError) -> MagnetPeer {
        let host: Substring
        let portText: Substring
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]"), value[value.index(after: close)...].hasPrefix(":")
            else {
                throw .invalidPeerAddress(value)
            }
            host = value[value.index(after: value.startIndex)..<close]
            portText = value[value.index(close, offsetBy: 2)...]
        } else {
            guard let colon = value.lastIndex(of: ":") else { throw .invalidPeerAddress(value) }
            host = value[..<colon]
            portText = value[value.index(after: colon)...]
            if host.contains(":") { throw .invalidPeerAddress(value) }
        }
        guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " || $0 == "[" || $0 == "]" }),
            portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(portText), port > 0
        else { throw .invalidPeerAddress(value) }
        return MagnetPeer(host: String(host), port: port)
    }

    static func parseSelectOnly(_ value: String) throws(MagnetError) -> [ClosedRange<Int>] {
        var ranges: [ClosedRange<Int>] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            guard ranges.count < maxSelectOnlyEntries else { throw .invalidSelectOnly(value) }
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count),
                bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
                let first = Int(bounds[0]), let last = Int(bounds[bounds.count - 1]), first <= last
            else { throw .invalidSelectOnly(value) }
            ranges.append(first...last)
        }
        return ranges
    }

    /// The magnet URI. Values are percent-encoded except for RFC 3986 unreserved characters.
    public var uri: String {
        var parameters: [String] = []
        if let infoHashV1 { parameters.append("xt=urn:btih:" + infoHashV1.hex) }
        if let infoHashV2 { parameters.append("xt=urn:btmh:1220" + Hex.encode(infoHashV2.bytes)) }
        if let displayName { parameters.append("dn=" + Self.percentEncode(displayName)) }
        parameters += trackers.map { "tr=" + Self.percentEncode($0) }
        parameters += webSeeds.map { "ws=" + Self.percentEncode($0) }
        parameters += peers.map { "x.pe=" + Self.percentEncode($0.description) }
        if !selectedFiles.isEmpty {
            let items = selectedFiles.map {
                $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)"
            }
            parameters.append("so=" + items.joined(separator: ","))
        }
        return "magnet:?" + parameters.joined(separator: "&")
    }

    static func percentEncode(_ text: String) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// RFC 4648 base32, as old magnet links spell infohashes.
enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// Decodes unpadded base32 (either case) whose length is a multiple of 8; nil otherwise.
    static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 8 == 0 else { return nil }
        var out: [UInt8] = []
        var buffer: UInt64 = 0
        var bits = 0
        for character in characters {
            let value: UInt8
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = character - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = character - UInt8(ascii: "a")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = character - UInt8(ascii: "2") + 26
            default: return nil
            }
            buffer = buffer << 5 | UInt64(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt64(bits)))
            }
        }
        return out
    }

    /// Encodes bytes whose count is a multiple of 5 (as a 20-byte hash is).
    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var buffer: UInt64 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt64(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int((buffer >> UInt64(bits)) & 0x1f)])
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt64(5 - bits)) & 0x1f)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
