import TorrentModel

/// The packets of the UDP tracker protocol (BEP 15). All integers are big-endian.
public enum UDPTrackerPacket {
    /// The magic `protocol_id` of a connect request.
    public static let protocolID: UInt64 = 0x417_2710_1980

    /// The `action` field.
    public enum Action: UInt32, Hashable, Sendable {
        case connect = 0
        case announce = 1
        case scrape = 2
        case error = 3
    }

    /// BEP 15: "Up to about 74 torrents can be scraped at once" (74 × 20 + 16 bytes fits a 1500-byte
    /// MTU with headers).
    public static let maxScrapeInfoHashes = 74

    /// 16 bytes: protocol id, action 0, transaction id.
    public static func connectRequest(transactionID: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        append(protocolID, to: &out)
        append(Action.connect.rawValue, to: &out)
        append(transactionID, to: &out)
        return out
    }

    /// 98 bytes. The IP address field carries `request.ip` only when it is IPv4 text and the socket is
    /// IPv4 (BEP 15 says to leave it 0 over IPv6); `numberWanted == nil` is sent as -1 ("default").
    public static func announceRequest(
        connectionID: UInt64, transactionID: UInt32, request: AnnounceRequest, family: AddressFamily
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(98)
        append(connectionID, to: &out)
        append(Action.announce.rawValue, to: &out)
        append(transactionID, to: &out)
        out.append(contentsOf: request.infoHash.bytes)
        out.append(contentsOf: request.peerID.bytes)
        append(request.downloadedBytes, to: &out)
        append(request.leftBytes, to: &out)
        append(request.uploadedBytes, to: &out)
        append(request.event.udpValue, to: &out)
        let address = family == .ipv4 ? request.ip.flatMap { IPv4Address($0) }?.value ?? 0 : 0
        append(address, to: &out)
        append(request.key ?? 0, to: &out)
        let wanted = request.numberWanted.map { UInt32(clamping: max(0, $0)) } ?? UInt32.max
        append(wanted, to: &out)
        append(UInt16(request.port), to: &out)
        return out
    }

    /// 16 + 20 × N bytes. The caller keeps N within ``maxScrapeInfoHashes``.
    public static func scrapeRequest(
        connectionID: UInt64, transactionID: UInt32, infoHashes: [InfoHash]
    )
        -> [UInt8]
    {
        var out: [UInt8] = []
        out.reserveCapacity(16 + 20 * infoHashes.count)
        append(connectionID, to: &out)
        append(Action.scrape.rawValue, to: &out)
        append(transactionID, to: &out)
        for infoHash in infoHashes { out.append(contentsOf: infoHash.bytes) }
        return out
    }

    static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var bigEndian = value.bigEndian
        withUnsafeBytes(of: &bigEndian) { out.append(contentsOf: $0) }
    }
}

/// A decoded packet from a UDP tracker.
public enum UDPTrackerResponse: Hashable, Sendable {
    /// One torrent's numbers in a scrape answer, in the order the infohashes were asked.
    public struct ScrapeCounts: Hashable, Sendable {
        /// BEP 15 "seeders".
        public var seederCount: Int64
        /// BEP 15 "completed": peers that ever finished.
        public var completedCount: Int64
        /// BEP 15 "leechers".
        public var leecherCount: Int64

        /// Counts from their parts.
        public init(seederCount: Int64, completedCount: Int64, leecherCount: Int64) {
            self.seederCount = seederCount
            self.completedCount = completedCount
            self.leecherCount = leecherCount
        }
    }

    case connect(transactionID: UInt32, connectionID: UInt64)
    case announce(transactionID: UInt32, response: AnnounceResponse)
    case scrape(transactionID: UInt32, counts: [ScrapeCounts])
    case error(transactionID: UInt32, message: String)

    /// The transaction id of any packet.
    public var transactionID: UInt32 {
        switch self {
        case .connect(let id, _), .announce(let id, _), .scrape(let id, _), .error(let id, _): id
        }
    }

    /// The action and transaction id, which BEP 15 says to check before anything else: at least 8 bytes.
    public static func header(_ datagram: some Collection<UInt8>) -> (action: UInt32, transactionID: UInt32)?
    {
        guard datagram.count >= 8 else { return nil }
        let bytes = Array(datagram.prefix(8))
        return (read32(bytes, at: 0), read32(bytes, at: 4))
    }

    /// Decodes a whole packet. Peer entries follow the socket's address family (`family`); trailing bytes
    /// that do not make a whole entry are an error, and so is a packet shorter than its action needs.
    public static func decode(
        _ datagram: some Collection<UInt8>, family: AddressFamily, limits: TrackerLimits = TrackerLimits()
    ) throws(TrackerError) -> UDPTrackerResponse {
        let bytes = Array(datagram)
        guard bytes.count >= 8 else {
            throw .udpPacketTooShort(action: 0, byteCount: bytes.count, minimum: 8)
        }
        let actionValue = read32(bytes, at: 0)
        let transactionID = read32(bytes, at: 4)
        guard let action = UDPTrackerPacket.Action(rawValue: actionValue) else {
            throw .udpUnknownAction(actionValue)
        }
        switch action {
        case .connect:
            guard bytes.count >= 16 else {
                throw .udpPacketTooShort(action: actionValue, byteCount: bytes.count, minimum: 16)
            }
            return .connect(transactionID: transactionID, connectionID: read64(bytes, at: 8))
        case .announce:
            guard bytes.count >= 20 else {
                throw .udpPacketTooShort(action: actionValue, byteCount: bytes.count, minimum: 20)
            }
            let peerBytes = bytes[20...]
            let stride = family.compactPeerByteCount
            guard peerBytes.count % stride == 0 else {
                throw .compactLengthNotMultiple(key: "peers", byteCount: peerBytes.count, stride: stride)
            }
            guard peerBytes.count / stride <= limits.maxPeerCount else {
                throw .tooManyPeers(count: peerBytes.count / stride, limit: limits.maxPeerCount)
            }
            var peers: [TrackerPeer] = []
            var skipped: [TrackerError] = []
            decodeCompactPeers(peerBytes, family: family, into: &peers, skipped: &skipped)
            // The interval is an unsigned field on the wire but some trackers treat it as signed.
            let interval = limits.clampedInterval(Int64(Int32(bitPattern: read32(bytes, at: 8))))
            let response = AnnounceResponse(
                intervalSeconds: interval, seederCount: Int64(read32(bytes, at: 16)),
                leecherCount: Int64(read32(bytes, at: 12)), peers: peers, skippedPeers: skipped)
            return .announce(transactionID: transactionID, response: response)
        case .scrape:
            let countBytes = bytes.count - 8
            guard countBytes % 12 == 0 else {
                throw .compactLengthNotMultiple(key: "scrape", byteCount: countBytes, stride: 12)
            }
            var counts: [ScrapeCounts] = []
            var offset = 8
            while offset + 12 <= bytes.count {
                counts.append(
                    ScrapeCounts(
                        seederCount: Int64(read32(bytes, at: offset)),
                        completedCount: Int64(read32(bytes, at: offset + 4)),
                        leecherCount: Int64(read32(bytes, at: offset + 8))))
                offset += 12
            }
            return .scrape(transactionID: transactionID, counts: counts)
        case .error:
            return .error(transactionID: transactionID, message: limits.message(bytes[8...]))
        }
    }

    private static func read32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    private static func read64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Why a datagram was dropped without affecting the exchange.
public enum UDPIgnoredReason: Hashable, Sendable, CustomStringConvertible {
    /// Nothing is in flight (a late answer to a finished exchange, or noise).
    case noRequestInFlight
    /// Shorter than the 8-byte action and transaction id header.
    case tooShort(byteCount: Int)
    /// Not the id we chose: a late answer to an earlier request, or a spoofing attempt.
    case wrongTransactionID(expected: UInt32, received: UInt32)
    /// The right transaction id but an action that does not answer what we sent.
    case unexpectedAction(expected: UInt32, received: UInt32)

    public var description: String {
        switch self {
        case .noRequestInFlight: "no request in flight"
        case .tooShort(let count): "\(count)-byte datagram"
        case .wrongTransactionID(let expected, let received):
            "transaction id \(received), expected \(expected)"
        case .unexpectedAction(let expected, let received): "action \(received), expected \(expected)"
        }
    }
}
