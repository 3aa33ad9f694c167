import TorrentModel

/// The client side of BEP 15 for one tracker address: a pure state machine. Requests, datagrams and the
/// current time go in; datagrams to send, results and the next deadline come out.
///
/// It reuses a connection id for as long as BEP 15 allows (until one minute after it was received),
/// retransmits after `15 × 2^n` seconds with `n` growing from 0 to 8 across one exchange and reset by
/// every valid answer, and gives up after the wait that follows the ninth send. When a retransmission is
/// due and the connection id has expired, it asks for a new one first, as BEP 15's timeline shows.
///
/// Invariants:
/// - At most one exchange is in flight; `exchange == nil` exactly when no datagram is awaited.
/// - Every datagram sent carries the transaction id stored in `exchange`; only a datagram with that id and
///   the action answering the stage (or the error action) changes state; anything else is ignored with a
///   reason.
/// - `exchange.attempt <= options.maxRetransmissionExponent`; the deadline is always
///   `sentAt + baseTimeoutSeconds × 2^attempt`.
/// - A request is sent only with a connection id received less than `connectionIDLifetimeSeconds` ago.
public struct UDPTrackerClient: Sendable {
    /// What to ask the tracker.
    public enum Request: Hashable, Sendable {
        case announce(AnnounceRequest)
        /// At most ``UDPTrackerPacket/maxScrapeInfoHashes``.
        case scrape([InfoHash])
    }

    /// What the I/O layer should do.
    public enum Action: Hashable, Sendable {
        /// Send this datagram to the tracker.
        case send([UInt8])
        /// The announce succeeded; the exchange is over.
        case announced(AnnounceResponse)
        /// The scrape succeeded, entries in the order asked (the tracker may answer fewer).
        case scraped([ScrapeEntry])
        /// The exchange is over without an answer: an error packet, a malformed answer, or a timeout.
        case failed(TrackerError)
        /// Call ``UDPTrackerClient/tick(now:)`` at this instant unless a datagram comes first.
        case nextTimeout(at: Instant)
        /// A datagram was dropped and the exchange goes on.
        case ignored(UDPIgnoredReason)
    }

    /// Timing parameters, BEP 15's by default.
    public struct Options: Hashable, Sendable {
        /// How long a connection id may be used after it was received: 60 s.
        public var connectionIDLifetimeSeconds: UInt64
        /// The first timeout, doubled after every retransmission: 15 s.
        public var baseTimeoutSeconds: UInt64
        /// The largest `n` in `15 × 2^n`: 8 (3,840 s).
        public var maxRetransmissionExponent: Int

        /// BEP 15's timing unless a simulation wants it faster.
        public init(
            connectionIDLifetimeSeconds: UInt64 = 60, baseTimeoutSeconds: UInt64 = 15,
            maxRetransmissionExponent: Int = 8
        ) {
            self.connectionIDLifetimeSeconds = connectionIDLifetimeSeconds
            self.baseTimeoutSeconds = baseTimeoutSeconds
            self.maxRetransmissionExponent = min(max(0, maxRetransmissionExponent), 30)
        }
    }

    private enum Stage: Hashable, Sendable {
        case connecting
        case requesting(connectionID: UInt64)
    }

    private struct Exchange: Hashable, Sendable {
        var request: Request
        var stage: Stage
        var transactionID: UInt32
        /// `n` in BEP 15's `15 × 2^n`.
        var attempt: Int
        var deadline: Instant
        /// How many datagrams this exchange has sent, for the timeout error.
        var sendCount: Int
    }

    /// The socket's address family, which fixes the peer format.
    public let family: AddressFamily
    /// Timing.
    public let options: Options
    /// Limits on what the tracker sends.
    public let limits: TrackerLimits
    private var random: SeededRandom
    private var connection: (id: UInt64, receivedAt: Instant)?
    private var exchange: Exchange?

    /// - Parameters:
    ///   - family: the address family of the socket, which decides the peer format in announce answers.
    ///   - random: where transaction ids come from.
    public init(
        family: AddressFamily, random: SeededRandom, options: Options = Options(),
        limits: TrackerLimits = TrackerLimits()
    ) {
        self.family = family
        self.random = random
        self.options = options
        self.limits = limits
    }

    /// Whether an exchange is in flight.
    public var isBusy: Bool { exchange != nil }

    /// The transaction id the tracker's answer must carry (nil: no exchange in flight). A socket shared
    /// by many clients routes datagrams by it.
    public var transactionID: UInt32? { exchange?.transactionID }

    /// The connection id the tracker gave and when: the tracker grants it to our address, so every
    /// client on the same socket may use it (see ``adoptConnection(id:receivedAt:)``).
    public var connectionGrant: (id: UInt64, receivedAt: Instant)? { connection }

    /// Takes a connection id another client on the same socket got from this tracker, if it is newer than
    /// ours: the next exchange skips the connect round trip.
    public mutating func adoptConnection(id: UInt64, receivedAt: Instant) {
        if let connection, connection.receivedAt >= receivedAt { return }
        connection = (id, receivedAt)
    }

    /// The connection id we may still use at `now`, if any.
    public func usableConnectionID(now: Instant) -> UInt64? {
        guard let connection,
            now < connection.receivedAt.adding(seconds: options.connectionIDLifetimeSeconds)
        else { return nil }
        return connection.id
    }

    /// Starts an exchange, abandoning any exchange in flight (its answers will be ignored).
    public mutating func start(_ request: Request, now: Instant) -> [Action] {
        exchange = nil
        if case .scrape(let infoHashes) = request, infoHashes.count > UDPTrackerPacket.maxScrapeInfoHashes {
            return [
                .failed(
                    .tooManyInfoHashes(count: infoHashes.count, limit: UDPTrackerPacket.maxScrapeInfoHashes))
            ]
        }
        let stage: Stage = usableConnectionID(now: now).map { .requesting(connectionID: $0) } ?? .connecting
        exchange = Exchange(
            request: request, stage: stage, transactionID: random.next32(), attempt: 0, deadline: now,
            sendCount: 0)
        return send(now: now)
    }

    /// Abandons the exchange in flight, if any, without a result.
    public mutating func cancel() { exchange = nil }

    /// A datagram from the tracker's address.
    public mutating func receive(datagram: some Collection<UInt8>, now: Instant) -> [Action] {
        guard var current = exchange else { return [.ignored(.noRequestInFlight)] }
        guard let header = UDPTrackerResponse.header(datagram) else {
            return [.ignored(.tooShort(byteCount: datagram.count))]
        }
        guard header.transactionID == current.transactionID else {
            return [
                .ignored(.wrongTransactionID(expected: current.transactionID, received: header.transactionID))
            ]
        }
        let expectedAction: UDPTrackerPacket.Action =
            switch (current.stage, current.request) {
            case (.connecting, _): .connect
            case (.requesting, .announce): .announce
            case (.requesting, .scrape): .scrape
            }
        guard
            header.action == expectedAction.rawValue
                || header.action == UDPTrackerPacket.Action.error.rawValue
        else {
            return [.ignored(.unexpectedAction(expected: expectedAction.rawValue, received: header.action))]
        }
        // The id and action match, so this is the tracker's answer: a malformed one ends the exchange
        // rather than leaving us to retransmit to a tracker that cannot speak the protocol.
        let response: UDPTrackerResponse
        do {
            response = try UDPTrackerResponse.decode(datagram, family: family, limits: limits)
        } catch {
            exchange = nil
            return [.failed(error)]
        }
        switch response {
        case .error(_, let message):
            exchange = nil
            return [.failed(.trackerFailure(reason: message))]
        case .connect(_, let connectionID):
            connection = (connectionID, now)
            current.stage = .requesting(connectionID: connectionID)
            current.transactionID = random.next32()
            // The attempts go on counting: a tracker that answers every connect and never the request
            // would otherwise keep the exchange open for ever.
            exchange = current
            return send(now: now)
        case .announce(_, let announce):
            exchange = nil
            return [.announced(announce)]
        case .scrape(_, let counts):
            exchange = nil
            guard case .scrape(let infoHashes) = current.request, counts.count <= infoHashes.count else {
                return [
                    .failed(.tooManyScrapeEntries(count: counts.count, limit: current.request.infoHashCount))
                ]
            }
            let entries = zip(infoHashes, counts).map { infoHash, count in
                ScrapeEntry(
                    infoHash: infoHash, seederCount: count.seederCount, completedCount: count.completedCount,
                    leecherCount: count.leecherCount)
            }
            return [.scraped(entries)]
        }
    }

    /// Time passed: retransmits or gives up when the deadline has come.
    public mutating func tick(now: Instant) -> [Action] {
        guard var current = exchange else { return [] }
        guard now >= current.deadline else { return [.nextTimeout(at: current.deadline)] }
        guard current.attempt < options.maxRetransmissionExponent else {
            exchange = nil
            return [.failed(.udpTimedOut(sendCount: current.sendCount))]
        }
        current.attempt += 1
        if case .requesting = current.stage, usableConnectionID(now: now) == nil {
            current.stage = .connecting
            current.transactionID = random.next32()
        }
        exchange = current
        return send(now: now)
    }

    /// Sends the datagram for the current stage and arms the timeout for the current attempt.
    private mutating func send(now: Instant) -> [Action] {
        guard var current = exchange else { return [] }
        if case .requesting = current.stage, usableConnectionID(now: now) == nil {
            current.stage = .connecting
        }
        let datagram: [UInt8]
        switch (current.stage, current.request) {
        case (.connecting, _):
            datagram = UDPTrackerPacket.connectRequest(transactionID: current.transactionID)
        case (.requesting(let connectionID), .announce(let request)):
            datagram = UDPTrackerPacket.announceRequest(
                connectionID: connectionID, transactionID: current.transactionID, request: request,
                family: family)
        case (.requesting(let connectionID), .scrape(let infoHashes)):
            datagram = UDPTrackerPacket.scrapeRequest(
                connectionID: connectionID, transactionID: current.transactionID, infoHashes: infoHashes)
        }
        current.deadline = now.adding(seconds: options.baseTimeoutSeconds << UInt64(current.attempt))
        current.sendCount += 1
        exchange = current
        return [.send(datagram), .nextTimeout(at: current.deadline)]
    }
}

extension UDPTrackerClient.Request {
    fileprivate var infoHashCount: Int {
        if case .scrape(let infoHashes) = self { infoHashes.count } else { 0 }
    }
}

extension SeededRandom {
    /// 32 random bits, for transaction ids and keys.
    mutating func next32() -> UInt32 { UInt32(truncatingIfNeeded: next() >> 32) }
}
