import Bencode
import TorrentModel

/// What we tell a tracker when announcing (BEP 3, with BEP 23's `compact=1`). The same values fill a
/// BEP 15 UDP announce.
public struct AnnounceRequest: Hashable, Sendable {
    /// The torrent's v1 infohash (or a v2 hash truncated to 20 bytes).
    public var infoHash: InfoHash
    /// Our peer id for this session; see ``PeerIdentity``.
    public var peerID: PeerID
    /// The TCP port we accept peers on.
    public var port: UInt16
    /// Payload bytes sent to peers since `started`.
    public var uploadedBytes: UInt64
    /// Payload bytes received from peers since `started`.
    public var downloadedBytes: UInt64
    /// Bytes still needed to complete the download (0 when seeding).
    public var leftBytes: UInt64
    /// Why we announce; ``AnnounceScheduler`` decides.
    public var event: AnnounceEvent
    /// How many peers we would like; nil lets the tracker choose (HTTP omits it, UDP sends -1).
    public var numberWanted: Int?
    /// A random value that lets the tracker recognise us when our address changes; see ``PeerIdentity``.
    public var key: UInt32?
    /// The `tracker id` the tracker gave in an earlier response, echoed back.
    public var trackerID: [UInt8]?
    /// An address to advertise instead of the one the tracker sees (most trackers ignore it).
    public var ip: String?

    /// A request; everything optional defaults to absent.
    public init(
        infoHash: InfoHash, peerID: PeerID, port: UInt16, uploadedBytes: UInt64 = 0,
        downloadedBytes: UInt64 = 0,
        leftBytes: UInt64, event: AnnounceEvent = .none, numberWanted: Int? = nil, key: UInt32? = nil,
        trackerID: [UInt8]? = nil, ip: String? = nil
    ) {
        self.infoHash = infoHash
        self.peerID = peerID
        self.port = port
        self.uploadedBytes = uploadedBytes
        self.downloadedBytes = downloadedBytes
        self.leftBytes = leftBytes
        self.event = event
        self.numberWanted = numberWanted
        self.key = key
        self.trackerID = trackerID
        self.ip = ip
    }

    /// The query parameters, in a fixed order, each value percent-encoded.
    public var queryString: String {
        var parameters = [
            "info_hash=" + percentEncode(infoHash.bytes),
            "peer_id=" + percentEncode(peerID.bytes),
            "port=\(port)",
            "uploaded=\(uploadedBytes)",
            "downloaded=\(downloadedBytes)",
            "left=\(leftBytes)",
            "compact=1",
        ]
        if let event = event.httpValue { parameters.append("event=" + event) }
        if let numberWanted { parameters.append("numwant=\(max(0, numberWanted))") }
        if let key { parameters.append("key=" + Self.keyText(key)) }
        if let trackerID { parameters.append("trackerid=" + percentEncode(trackerID)) }
        if let ip { parameters.append("ip=" + percentEncode(Array(ip.utf8))) }
        return parameters.joined(separator: "&")
    }

    /// The full announce URL: `tracker`'s own query (a passkey, say) kept, ours appended.
    public func url(tracker: TrackerURL) -> TrackerURL {
        tracker.appendingQuery(queryString)
    }

    /// Eight upper-case hex digits, the form most clients send, so the key is URL-safe as is.
    static func keyText(_ key: UInt32) -> String {
        let digits = String(key, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// Percent-encodes bytes for a URL query (RFC 3986): the unreserved characters `A-Z a-z 0-9 - . _ ~`
/// stay as they are, every other byte becomes `%XX` with upper-case hex. Binary infohashes and peer ids
/// are encoded byte by byte this way; trackers compare the decoded bytes.
public func percentEncode(_ bytes: some Sequence<UInt8>) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 3)
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            out.append(byte)
        default:
            out.append(UInt8(ascii: "%"))
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0f)])
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// A tracker's successful answer to an announce (HTTP per BEP 3, 7 and 23, or UDP per BEP 15).
public struct AnnounceResponse: Hashable, Sendable {
    /// Seconds until the next regular announce, already clamped into ``TrackerLimits/intervalSecondsRange``.
    public var intervalSeconds: Int64
    /// Seconds we must wait at least between announces, clamped the same way; nil if not given.
    public var minimumIntervalSeconds: Int64?
    /// Shown to the user; the announce still succeeded.
    public var warningMessage: String?
    /// To echo back as `trackerid` in later announces.
    public var trackerID: [UInt8]?
    /// Seeders, if the tracker said.
    public var seederCount: Int64?
    /// Leechers, if the tracker said.
    public var leecherCount: Int64?
    /// Usable peers from `peers` and `peers6`, in the order given.
    public var peers: [TrackerPeer]
    /// Entries that were dropped (port 0, unparseable address, malformed entry), each with its reason.
    /// Bounded by ``TrackerLimits/maxPeerCount`` like the peers themselves.
    public var skippedPeers: [TrackerError]

    /// A response from already validated values (UDP decoding and tests use this).
    public init(
        intervalSeconds: Int64, minimumIntervalSeconds: Int64? = nil, warningMessage: String? = nil,
        trackerID: [UInt8]? = nil, seederCount: Int64? = nil, leecherCount: Int64? = nil,
        peers: [TrackerPeer] = [], skippedPeers: [TrackerError] = []
    ) {
        self.intervalSeconds = intervalSeconds
        self.minimumIntervalSeconds = minimumIntervalSeconds
        self.warningMessage = warningMessage
        self.trackerID = trackerID
        self.seederCount = seederCount
        self.leecherCount = leecherCount
        self.peers = peers
        self.skippedPeers = skippedPeers
    }

    /// Parses a bencoded HTTP announce response body.
    ///
    /// A `failure reason` is thrown as ``TrackerError/trackerFailure(reason:)``. Everything else a
    /// tracker could get wrong (size, types, lengths, counts) is a typed error too; absurd intervals are
    /// clamped rather than refused, because the rest of the answer is still good. Single bad peers are
    /// skipped and listed in ``skippedPeers``.
    public init(parsing body: [UInt8], limits: TrackerLimits = TrackerLimits()) throws(TrackerError) {
        let root = try decodeDictionary(body, limits: limits)
        if let failure = root["failure reason"] {
            throw .trackerFailure(reason: limits.message(try byteString(failure, key: "failure reason")))
        }
        guard let interval = root["interval"] else { throw .missingKey("interval") }
        intervalSeconds = limits.clampedInterval(try integer(interval, key: "interval"))
        minimumIntervalSeconds = try root["min interval"].map { node throws(TrackerError) in
            limits.clampedInterval(try integer(node, key: "min interval"))
        }
        warningMessage = try root["warning message"].map { node throws(TrackerError) in
            limits.message(try byteString(node, key: "warning message"))
        }
        trackerID = try root["tracker id"].map { node throws(TrackerError) in
            let bytes = try byteString(node, key: "tracker id")
            guard bytes.count <= limits.maxTrackerIDBytes else {
                throw .trackerIDTooLong(byteCount: bytes.count, limit: limits.maxTrackerIDBytes)
            }
            return Array(bytes)
        }
        seederCount = try root["complete"].map { node throws(TrackerError) in
            try count(node, key: "complete")
        }
        leecherCount = try root["incomplete"].map { node throws(TrackerError) in
            try count(node, key: "incomplete")
        }

        var peers: [TrackerPeer] = []
        var skipped: [TrackerError] = []
        var listed = 0
        if let node = root["peers"] {
            switch node.kind {
            case .byteString:
                let bytes = node.byteString ?? []
                guard bytes.count % 6 == 0 else {
                    throw .compactLengthNotMultiple(key: "peers", byteCount: bytes.count, stride: 6)
                }
                listed += bytes.count / 6
                guard listed <= limits.maxPeerCount else {
                    throw .tooManyPeers(count: listed, limit: limits.maxPeerCount)
                }
                decodeCompactPeers(bytes, family: .ipv4, into: &peers, skipped: &skipped)
            case .list:
                let list = node.list.map { Array($0) } ?? []
                listed += list.count
                guard listed <= limits.maxPeerCount else {
                    throw .tooManyPeers(count: listed, limit: limits.maxPeerCount)
                }
                for (index, entry) in list.enumerated() {
                    do {
                        peers.append(try dictionaryPeer(entry, index: index))
                    } catch {
                        skipped.append(error)
                    }
                }
            default:
                throw .wrongType(key: "peers", expected: .byteString, found: node.kind)
            }
        }
        if let node = root["peers6"] {
            let bytes = try byteString(node, key: "peers6")
            guard bytes.count % 18 == 0 else {
                throw .compactLengthNotMultiple(key: "peers6", byteCount: bytes.count, stride: 18)
            }
            listed += bytes.count / 18
            guard listed <= limits.maxPeerCount else {
                throw .tooManyPeers(count: listed, limit: limits.maxPeerCount)
            }
            decodeCompactPeers(bytes, family: .ipv6, into: &peers, skipped: &skipped)
        }
        self.peers = peers
        self.skippedPeers = skipped
    }
}

/// One dictionary-form peer (`ip`, `port`, optional `peer id`).
private func dictionaryPeer(_ node: BencodeNode, index: Int) throws(TrackerError) -> TrackerPeer {
    guard node.kind == .dictionary else { throw .malformedPeerEntry(index: index) }
    guard let ipNode = node["ip"], let ipBytes = ipNode.byteString, let portValue = node["port"]?.integer
    else { throw .malformedPeerEntry(index: index) }
    let text = String(decoding: ipBytes.prefix(260), as: UTF8.self)
    let host: PeerHost
    if let address = IPv4Address(text) {
        host = .ipv4(address)
    } else if let address = IPv6Address(text) {
        host = .ipv6(address)
    } else if isValidHostName(text), ipBytes.count <= 253 {
        host = .name(text.lowercased())
    } else {
        throw .invalidPeerAddress(text)
    }
    guard portValue != 0 else { throw .peerPortZero(peer: host.description) }
    guard (1...65535).contains(portValue) else { throw .valueOutOfRange(key: "port", value: portValue) }
    var peerID: PeerID?
    if let idNode = node["peer id"] {
        guard let bytes = idNode.byteString, let id = PeerID(bytes) else {
            throw .invalidPeerID(byteCount: idNode.byteString?.count ?? 0)
        }
        peerID = id
    }
    return TrackerPeer(host: host, port: UInt16(portValue), peerID: peerID)
}

/// Decodes a response body whose root must be a dictionary, within the size limit.
func decodeDictionary(_ body: [UInt8], limits: TrackerLimits) throws(TrackerError) -> BencodeNode {
    guard body.count <= limits.maxResponseBytes else {
        throw .responseTooLarge(byteCount: body.count, limit: limits.maxResponseBytes)
    }
    let document: BencodeDocument
    do {
        // Responses are flat: a depth of 8 and an element budget from the peer limit are plenty.
        let bencodeLimits = BencodeLimits(
            maxDepth: 8, maxElementCount: max(1024, limits.maxPeerCount * 8 + limits.maxScrapeEntryCount * 8),
            maxInputBytes: limits.maxResponseBytes)
        document = try BencodeDocument(bytes: body, limits: bencodeLimits)
    } catch {
        throw .malformedBencode(error)
    }
    guard document.root.kind == .dictionary else { throw .notADictionary(context: "response") }
    return document.root
}

func integer(_ node: BencodeNode, key: String) throws(TrackerError) -> Int64 {
    guard let value = node.integer else { throw .wrongType(key: key, expected: .integer, found: node.kind) }
    return value
}

/// A count that cannot be negative.
func count(_ node: BencodeNode, key: String) throws(TrackerError) -> Int64 {
    let value = try integer(node, key: key)
    guard value >= 0 else { throw .valueOutOfRange(key: key, value: value) }
    return value
}

func byteString(_ node: BencodeNode, key: String) throws(TrackerError) -> ArraySlice<UInt8> {
    guard let bytes = node.byteString else {
        throw .wrongType(key: key, expected: .byteString, found: node.kind)
    }
    return bytes
}
