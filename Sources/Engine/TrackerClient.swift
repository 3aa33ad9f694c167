import Glibc
import OutboundHTTP
import TLS
import TorrentModel
import Tracker
import URing

/// Why one exchange with a tracker failed: the tracker's own answer, or the way to it.
public enum TrackerFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The tracker answered, but with a refusal or something we could not accept.
    case tracker(TrackerError)
    /// A socket operation failed; `call` names it and the address.
    case system(call: String, errno: Errno)
    /// No answer in time; `stage` says what we were waiting for.
    case timedOut(stage: String, seconds: Int)
    /// The tracker's host name could not be turned into an address.
    case hostNotResolved(host: String, reason: String)
    /// TLS with an `https` tracker failed (an unverifiable certificate, a handshake error).
    case tls(url: String, reason: String)
    /// Too many exchanges at once (a programming limit, not the tracker's fault).
    case tooManyExchanges(limit: Int)
    /// Given up by us (shutdown, or the caller's deadline).
    case abandoned

    public var description: String {
        switch self {
        case .tracker(let error): "\(error)"
        case .system(let call, let errno): "\(call) failed: \(errno)"
        case .timedOut(let stage, let seconds): "no answer to \(stage) within \(seconds) s"
        case .hostNotResolved(let host, let reason): "cannot resolve '\(host)': \(reason)"
        case .tls(let url, let reason): "TLS with \(url): \(reason)"
        case .tooManyExchanges(let limit): "more than \(limit) tracker exchanges at once"
        case .abandoned: "abandoned"
        }
    }
}

/// Runs tracker exchanges (HTTP announce and scrape over TCP, BEP 15 over UDP) on the reactor's ring,
/// driving the pure state machines of the `Tracker` module. Bytes and completions go in; finished
/// exchanges come out through ``takeFinished()``.
///
/// Every operation carries the owner byte ``owner`` and a slot from this client's own table, so the
/// reactor routes its completions here with one comparison. An HTTP exchange is bounded as a whole by
/// ``Limits/httpTimeoutSeconds`` (each connect, send and receive is linked to a timeout for what is left
/// of it), and its response by the parser's limits. UDP exchanges use BEP 15's retransmission timers,
/// which ``tick(now:)`` checks, over the reactor's shared ``UDPTrackerTransport`` (or one of its own
/// when run alone).
///
/// Invariants: at most one operation per HTTP exchange is in flight (connect, send or receive; each with
/// its linked timeout), and its buffers live in the exchange until that operation completes; per UDP
/// tracker address at most one exchange is active (others wait in `waiting`), and only its current
/// transaction id is routed to it; a slot's context is released when its main operation completes, so
/// a linked timeout's completion arriving later is recognised as stale.
final class TrackerClient {
    /// The owner byte in completion tokens (peers 1, storage 2, recheck 3, listener 4).
    static let owner: UInt8 = 5
    /// Log lines about ignored datagrams per UDP tracker address.
    static let maxIgnoredDatagramsLogged = 10

    /// Bounds on one client's work.
    struct Limits {
        /// The longest an HTTP exchange (connect, redirects, request and response) may take.
        var httpTimeoutSeconds: UInt64 = 30
        /// The longest one TCP connect may take.
        var connectTimeoutSeconds: UInt64 = 10
        /// Bytes read per receive from an HTTP tracker; the parser bounds the total.
        var httpReceiveBufferBytes = 16 * 1024
        /// Exchanges in flight at once (a torrent has one; `info --scrape` one per tracker).
        var maxExchanges = 64
        /// Limits on what trackers send.
        var tracker = TrackerLimits()
        /// BEP 15 timing (tests and `info --scrape` may shorten it).
        var udp = UDPTrackerClient.Options()
    }

    /// What to ask a tracker.
    enum Query {
        case announce(AnnounceRequest)
        case scrape([InfoHash])
    }

    /// How an exchange ended.
    enum Reply {
        case announced(AnnounceResponse)
        case scraped([ScrapeEntry])
        case failed(TrackerFailure)
    }

    typealias ExchangeID = Int

    /// A UDP exchange restarts with a new transaction id when another client waits for the one it drew;
    /// this many times in a row means something is wrong.
    static let maximumTransactionIDDraws = 8

    let limits: Limits
    private let ring: Ring
    private let userAgent: String
    private let resolver: HostResolver
    /// The context of `https` trackers (the system store and any extra CA file), loaded off the
    /// reactor thread at the first `https` exchange.
    private let tlsContexts: TLSContextLoader
    private var table: OperationTable<ExchangeID>
    private let udpTransport: UDPTrackerTransport
    /// The transport is this client's own (run alone): its completions come through ``handle(_:now:)``.
    private let ownsUDPTransport: Bool
    private var nextID: ExchangeID = 1
    private var http: [ExchangeID: HTTPExchange] = [:]
    private var udp: [SocketAddress: UDPTrackerEndpoint] = [:]
    private var finished: [(ExchangeID, Reply)] = []
    /// ``closeAll()`` ran: what completes now only lets go of its resources.
    private var closed = false
    private var random: SeededRandom
    private let log: (String) -> Void
    /// Called when a UDP answer or error ended an exchange outside ``handle(_:now:)`` and ``tick(now:)``
    /// (the shared transport delivered it): ``takeFinished()`` has news.
    var udpExchangeEnded: ((UInt64) -> Void)?

    /// - Parameter udpTransport: the reactor's shared socket; nil makes one for this client alone.
    init(
        ring: Ring, tenant: UInt16 = 0, limits: Limits = Limits(), seed: UInt64, resolver: HostResolver,
        udpTransport: UDPTrackerTransport? = nil, extraCAFile: String? = nil,
        log: @escaping (String) -> Void
    ) {
        self.ring = ring
        tlsContexts = TLSContextLoader(extraCAFile: extraCAFile, waker: ring.waker)
        self.limits = limits
        self.resolver = resolver
        self.userAgent = "Potluck/\(potluckVersion)"
        self.random = SeededRandom(seed: seed)
        self.log = log
        self.udpTransport = udpTransport ?? UDPTrackerTransport(ring: ring, tenant: tenant, log: log)
        ownsUDPTransport = udpTransport == nil
        // One operation per HTTP exchange, and its linked timeout's slot until it completes.
        table = OperationTable(capacity: limits.maxExchanges * 2 + 2, owner: Self.owner, tenant: tenant)
    }

    deinit { closeAll() }

    /// Whether any exchange is still running.
    var isBusy: Bool { !http.isEmpty || udp.values.contains { $0.active != nil || !$0.waiting.isEmpty } }

    /// Exchanges that ended since the last call, in the order they ended.
    func takeFinished() -> [(ExchangeID, Reply)] {
        defer { finished.removeAll(keepingCapacity: true) }
        return finished
    }

    /// Starts asking `url`; the answer comes out of ``takeFinished()`` under the returned id.
    func begin(_ query: Query, url: TrackerURL, now: UInt64) -> ExchangeID {
        let id = nextID
        nextID += 1
        let running = http.count + udp.values.reduce(0) { $0 + ($1.active == nil ? 0 : 1) + $1.waiting.count }
        guard running < limits.maxExchanges else {
            finished.append((id, .failed(.tooManyExchanges(limit: limits.maxExchanges))))
            return id
        }
        switch url.scheme {
        case .http, .https:
            let request: TrackerURL
            switch query {
            case .announce(let announce):
                request = announce.url(tracker: url)
            case .scrape(let infoHashes):
                do {
                    request = try Scrape.requestURL(announce: url, infoHashes: infoHashes)
                } catch {
                    finished.append((id, .failed(.tracker(error))))
                    return id
                }
            }
            let exchange = HTTPExchange(
                id: id, query: query,
                session: HTTPTrackerSession(url: request, userAgent: userAgent),
                bufferBytes: limits.httpReceiveBufferBytes,
                deadline: now + limits.httpTimeoutSeconds * 1_000_000_000)
            http[id] = exchange
            perform(exchange.session.start(), on: exchange, now: now)
        case .udp:
            beginUDP(id: id, query: query, url: url, now: now)
        }
        return id
    }

    /// Abandons an exchange; it finishes with ``TrackerFailure/abandoned`` (at once, or when its
    /// operation in flight completes).
    func abandon(_ id: ExchangeID) {
        if let exchange = http[id] {
            if exchange.operationInFlight {
                exchange.abandoned = true
                if exchange.fd >= 0 { Glibc.shutdown(exchange.fd, Int32(SHUT_RDWR)) }
            } else {
                finishHTTP(exchange, .failed(.abandoned))
            }
            return
        }
        for endpoint in udp.values {
            if endpoint.active?.id == id {
                endpoint.client.cancel()
                finishUDP(endpoint, .failed(.abandoned), now: nil)
                return
            }
            if let index = endpoint.waiting.firstIndex(where: { $0.id == id }) {
                endpoint.waiting.remove(at: index)
                finished.append((id, .failed(.abandoned)))
                return
            }
        }
    }

    /// Whether nothing is asked, waiting or unread: the client may be dropped without a socket or a
    /// buffer left in the kernel's hands.
    var isIdle: Bool {
        http.isEmpty && finished.isEmpty && udp.values.allSatisfy { $0.active == nil && $0.waiting.isEmpty }
    }

    /// Closes every socket. Exchanges still running are dropped without a reply; one with an
    /// operation on the ring is shut down (which ends even a connect) and kept, with its buffer, until
    /// that operation completes: its owner waits for ``hasOperationsInFlight`` to turn false before
    /// it leaves the reactor, so a late completion never reaches whoever takes its tenant number.
    func closeAll() {
        closed = true
        for exchange in http.values {
            guard exchange.operationInFlight else {
                if exchange.fd >= 0 { Glibc.close(exchange.fd) }
                exchange.fd = -1
                http[exchange.id] = nil
                continue
            }
            exchange.abandoned = true
            if exchange.fd >= 0 { Glibc.shutdown(exchange.fd, Int32(SHUT_RDWR)) }
        }
        for endpoint in udp.values { unroute(endpoint) }
        udp.removeAll()
        if ownsUDPTransport {
            udpTransport.shutDown()
            udpTransport.closeSockets()
        }
    }

    /// Operations of this client still on the ring (after ``closeAll()``, until they complete).
    var hasOperationsInFlight: Bool {
        http.values.contains { $0.operationInFlight }
            || (ownsUDPTransport && udpTransport.operationsInFlight > 0)
    }

    /// Time passed: connections that waited for a lookup or the certificate store, BEP 15
    /// retransmissions and give-ups.
    func tick(now: UInt64) {
        for exchange in http.values {
            guard let (url, request) = exchange.parkedConnect else { continue }
            exchange.parkedConnect = nil
            perform(.connect(url: url, request: request), on: exchange, now: now)
        }
        let instant = Instant(nanoseconds: now)
        for endpoint in udp.values {
            if let retryAt = endpoint.retryAt, retryAt <= instant {
                endpoint.retryAt = nil
                perform(endpoint.client.tick(now: instant), on: endpoint, now: now)
            }
            startWaiting(endpoint, now: now)
        }
    }

    /// A completion whose token carries ``owner`` (or, for a client run alone, its transport's owner).
    func handle(_ completion: Completion, now: UInt64) {
        if completion.slot.owner == UDPTrackerTransport.owner {
            guard ownsUDPTransport else { return }
            udpTransport.handle(completion, now: now)
            // Closed with receives in flight: the sockets close after the last one.
            if closed { udpTransport.closeSockets() }
            return
        }
        // A linked timeout's own completion says nothing the operation's completion will not.
        guard completion.token.kind != .linkTimeout else { return }
        guard let owner = table.context(for: completion.slot) else { return }
        table.release(completion.slot)
        guard let exchange = http[owner] else { return }
        httpCompleted(completion, exchange: exchange, now: now)
    }

    // MARK: Submitting

    /// Queues `operation`, bounded by `timeoutNanoseconds`; false if no slot or no room.
    private func submit(_ operation: Operation, for id: ExchangeID, timeoutNanoseconds: UInt64) -> Bool {
        guard let slot = table.acquire(id) else { return false }
        do {
            try ring.enqueue(operation, for: slot, flags: .link)
            try ring.enqueue(.linkTimeout(.nanoseconds(Int64(timeoutNanoseconds))), for: slot)
            return true
        } catch {
            table.release(slot)
            log("tracker: cannot queue \(operation.kindName): \(error)")
            return false
        }
    }

    private func address(for url: TrackerURL) -> Result<SocketAddress, TrackerFailure> {
        switch url.host {
        case .ipv4(let address):
            return .success(.ipv4(address: address.value, port: url.port))
        case .ipv6(let address):
            return .success(.ipv6(address: address.bytes, port: url.port))
        case .name(let name):
            switch resolver.lookup(name) {
            case .resolved(let address): return .success(address.with(port: url.port))
            case .failed(let reason): return .failure(.hostNotResolved(host: name, reason: reason))
            case .pending: return .failure(.hostNotResolved(host: name, reason: "lookup in progress"))
            }
        }
    }

    /// Whether an exchange with `url` must wait: its host needs a DNS lookup, or (`https`) the
    /// certificate store is loading. Both are started now if so, off the reactor thread, and wake
    /// the ring when done; ask again later.
    func mustWait(for url: TrackerURL) -> Bool {
        if url.requiresTLS, tlsContexts.context() == nil { return true }
        guard case .name(let name) = url.host else { return false }
        // A failure stays for `address(for:)` to report.
        if case .pending = resolver.lookup(name, consumingFailure: false) { return true }
        return false
    }

    // MARK: HTTP

    private func perform(_ action: HTTPTrackerSession.Action, on exchange: HTTPExchange, now: UInt64) {
        switch action {
        case .connect(let url, let request):
            if exchange.fd >= 0 {
                Glibc.close(exchange.fd)
                exchange.fd = -1
            }
            guard now < exchange.deadline else {
                finishHTTP(exchange, .failed(.timedOut(stage: "HTTP redirect", seconds: httpSeconds)))
                return
            }
            // A redirect's new host may need a lookup, or https the certificate store: ticks retry.
            if mustWait(for: url) {
                exchange.parkedConnect = (url, request)
                return
            }
            let address: SocketAddress
            switch self.address(for: url) {
            case .success(let resolved): address = resolved
            case .failure(let failure):
                finishHTTP(exchange, .failed(failure))
                return
            }
            guard let fd = try? Socket.makeTCP(family: address.family) else {
                finishHTTP(exchange, .failed(.system(call: "socket", errno: Errno(rawValue: errno))))
                return
            }
            exchange.fd = fd
            exchange.address = address
            exchange.request = request
            exchange.tls = nil
            if url.requiresTLS {
                do throws(TLSError) {
                    exchange.tls = try makeTLS(for: url)
                } catch {
                    finishHTTP(exchange, .failed(.tls(url: url.origin, reason: error.description)))
                    return
                }
                exchange.tls?.write(request)
            }
            exchange.stage = "connect to \(address)"
            let timeout = min(
                limits.connectTimeoutSeconds * 1_000_000_000, exchange.deadline - now)
            submitHTTP(.connect(fd: fd, address: address), exchange, timeoutNanoseconds: timeout)
        case .completed(let response):
            let reply: Reply
            do throws(TrackerError) {
                switch exchange.query {
                case .announce:
                    reply = .announced(try AnnounceResponse(parsing: response.body, limits: limits.tracker))
                case .scrape:
                    reply = .scraped(try Scrape.parseResponse(response.body, limits: limits.tracker))
                }
            } catch {
                reply = .failed(.tracker(error))
            }
            finishHTTP(exchange, reply)
        case .failed(let error):
            finishHTTP(exchange, .failed(.tracker(error)))
        }
    }

    private var httpSeconds: Int { Int(limits.httpTimeoutSeconds) }

    private func submitHTTP(_ operation: Operation, _ exchange: HTTPExchange, timeoutNanoseconds: UInt64) {
        if submit(operation, for: exchange.id, timeoutNanoseconds: max(1_000_000, timeoutNanoseconds)) {
            exchange.operationInFlight = true
        } else {
            finishHTTP(exchange, .failed(.tooManyExchanges(limit: limits.maxExchanges)))
        }
    }

    /// Callers wait for the context first (``mustWait(for:)``); one begun before it loaded fails.
    private func makeTLS(for url: TrackerURL) throws(TLSError) -> TLSConnection {
        guard let context = tlsContexts.context() else {
            throw TLSError("the certificate store is still loading")
        }
        return try TLSConnection(context: context.get(), for: url)
    }

    /// Moves a TLS session along: plaintext to the HTTP parser, ciphertext out, or more to read.
    private func advanceTLS(_ exchange: HTTPExchange, _ tls: TLSConnection, now: UInt64) {
        let plaintext: [UInt8]
        do throws(TLSError) {
            plaintext = try tls.advance()
        } catch {
            let url = exchange.session.currentURL.origin
            finishHTTP(exchange, .failed(.tls(url: url, reason: error.description)))
            return
        }
        let output = tls.takeOutput()
        if !plaintext.isEmpty, let action = exchange.session.receive(plaintext) {
            perform(action, on: exchange, now: now)
            return
        }
        if tls.closed {
            perform(exchange.session.connectionClosed(), on: exchange, now: now)
        } else if !output.isEmpty {
            exchange.outgoing = output
            exchange.sendOffset = 0
            sendRequest(exchange, now: now)
        } else {
            receive(exchange, now: now)
        }
    }

    private func sendRequest(_ exchange: HTTPExchange, now: UInt64) {
        let bytes = exchange.outgoing.withUnsafeBytes {
            UnsafeRawBufferPointer(rebasing: $0[exchange.sendOffset...])
        }
        exchange.stage =
            exchange.tls.map { $0.isEstablished ? "HTTPS request to " : "TLS handshake with " }
            ?? "HTTP request to "
        exchange.stage += exchange.addressText
        submitHTTP(
            .send(fd: exchange.fd, bytes: bytes), exchange, timeoutNanoseconds: remaining(exchange, now))
    }

    private func receive(_ exchange: HTTPExchange, now: UInt64) {
        exchange.stage = "HTTP response from \(exchange.addressText)"
        submitHTTP(
            .receive(fd: exchange.fd, into: exchange.buffer), exchange,
            timeoutNanoseconds: remaining(exchange, now))
    }

    private func remaining(_ exchange: HTTPExchange, _ now: UInt64) -> UInt64 {
        exchange.deadline > now ? exchange.deadline - now : 0
    }

    private func httpCompleted(_ completion: Completion, exchange: HTTPExchange, now: UInt64) {
        exchange.operationInFlight = false
        if exchange.abandoned {
            finishHTTP(exchange, .failed(.abandoned))
            return
        }
        let result = completion.result
        guard result >= 0 else {
            // A linked timeout cancels the operation it bounds.
            let failure: TrackerFailure =
                result == -ECANCELED || result == -ETIME
                ? .timedOut(stage: exchange.stage, seconds: httpSeconds)
                : .system(call: exchange.stage, errno: Errno(rawValue: -result))
            finishHTTP(exchange, .failed(failure))
            return
        }
        switch completion.token.kind {
        case .connect:
            if let tls = exchange.tls {
                advanceTLS(exchange, tls, now: now)
            } else {
                exchange.outgoing = exchange.request
                exchange.sendOffset = 0
                sendRequest(exchange, now: now)
            }
        case .send:
            exchange.sendOffset += Int(result)
            if result == 0 {
                finishHTTP(exchange, .failed(.system(call: exchange.stage, errno: .brokenPipe)))
            } else if exchange.sendOffset < exchange.outgoing.count {
                sendRequest(exchange, now: now)
            } else {
                receive(exchange, now: now)
            }
        case .receive:
            if result == 0 {
                perform(exchange.session.connectionClosed(), on: exchange, now: now)
                return
            }
            let bytes = UnsafeRawBufferPointer(rebasing: exchange.buffer[..<Int(result)])
            if let tls = exchange.tls {
                do throws(TLSError) {
                    try tls.receive(bytes)
                } catch {
                    let url = exchange.session.currentURL.description
                    finishHTTP(exchange, .failed(.tls(url: url, reason: error.description)))
                    return
                }
                advanceTLS(exchange, tls, now: now)
            } else if let action = exchange.session.receive(bytes) {
                perform(action, on: exchange, now: now)
            } else {
                receive(exchange, now: now)
            }
        default:
            break
        }
    }

    private func finishHTTP(_ exchange: HTTPExchange, _ reply: Reply) {
        guard http.removeValue(forKey: exchange.id) != nil else { return }
        if exchange.fd >= 0 {
            Glibc.close(exchange.fd)
            exchange.fd = -1
        }
        if !closed { finished.append((exchange.id, reply)) }
    }

    // MARK: UDP

    private func beginUDP(id: ExchangeID, query: Query, url: TrackerURL, now: UInt64) {
        let address: SocketAddress
        switch self.address(for: url) {
        case .success(let resolved): address = resolved
        case .failure(let failure):
            finished.append((id, .failed(failure)))
            return
        }
        if udp[address] == nil && udp.count >= 256 {
            // The reactor's scrapes reach every tracker its torrents name, for as long as it runs:
            // idle endpoints go (their transport keeps the trackers' connection ids).
            udp = udp.filter { $0.value.active != nil || !$0.value.waiting.isEmpty }
        }
        let endpoint =
            udp[address]
            ?? UDPTrackerEndpoint(
                address: address, owner: self,
                client: UDPTrackerClient(
                    family: address.family == AF_INET6 ? .ipv6 : .ipv4,
                    random: SeededRandom(seed: random.next()), options: limits.udp, limits: limits.tracker))
        udp[address] = endpoint
        endpoint.waiting.append((id, query, url))
        startWaiting(endpoint, now: now)
    }

    private func startWaiting(_ endpoint: UDPTrackerEndpoint, now: UInt64) {
        guard endpoint.active == nil, !endpoint.waiting.isEmpty else { return }
        let (id, query, url) = endpoint.waiting.removeFirst()
        endpoint.active = (id, query, url)
        endpoint.transactionIDDraws = 0
        start(endpoint, query: query, now: now)
    }

    /// (Re)starts the active exchange, with a connection id another torrent got from this tracker if
    /// it is newer than ours.
    private func start(_ endpoint: UDPTrackerEndpoint, query: Query, now: UInt64) {
        if let grant = udpTransport.connectionGrant(for: endpoint.address) {
            endpoint.client.adoptConnection(id: grant.id, receivedAt: grant.receivedAt)
        }
        let request: UDPTrackerClient.Request =
            switch query {
            case .announce(let announce): .announce(announce)
            case .scrape(let infoHashes): .scrape(infoHashes)
            }
        perform(endpoint.client.start(request, now: Instant(nanoseconds: now)), on: endpoint, now: now)
    }

    private func perform(_ actions: [UDPTrackerClient.Action], on endpoint: UDPTrackerEndpoint, now: UInt64) {
        var redraw = false
        for action in actions {
            switch action {
            case .send(let datagram):
                guard route(endpoint) else {
                    redraw = true
                    continue
                }
                do throws(TrackerFailure) {
                    try udpTransport.send(datagram, to: endpoint.address)
                } catch {
                    endpoint.client.cancel()
                    finishUDP(endpoint, .failed(error), now: now)
                    return
                }
            case .nextTimeout(let at):
                endpoint.retryAt = at
            case .announced(let response):
                finishUDP(endpoint, .announced(response), now: now)
            case .scraped(let entries):
                finishUDP(endpoint, .scraped(entries), now: now)
            case .failed(let error):
                finishUDP(endpoint, .failed(.tracker(error)), now: now)
            case .ignored(let reason):
                // A tracker spraying datagrams gets a few lines in the log, not one per datagram.
                endpoint.ignoredCount += 1
                guard endpoint.ignoredCount <= Self.maxIgnoredDatagramsLogged else { continue }
                let name = endpoint.active.map { "\($0.url)" } ?? "udp://\(endpoint.address)"
                log("tracker \(name): ignored a datagram: \(reason)")
            }
        }
        guard redraw, let active = endpoint.active else { return }
        // Another torrent waits for an answer with the id this exchange drew: it draws again.
        endpoint.transactionIDDraws += 1
        guard endpoint.transactionIDDraws < Self.maximumTransactionIDDraws else {
            endpoint.client.cancel()
            finishUDP(
                endpoint, .failed(.system(call: "udp://\(endpoint.address)", errno: .resourceBusy)), now: now)
            return
        }
        start(endpoint, query: active.query, now: now)
    }

    /// Routes the answers to the endpoint's current transaction id to it (and no longer its last one);
    /// false when another client waits for that id from the same tracker.
    private func route(_ endpoint: UDPTrackerEndpoint) -> Bool {
        guard let transactionID = endpoint.client.transactionID else { return false }
        if endpoint.routedTransactionID == transactionID { return true }
        unroute(endpoint)
        guard udpTransport.route(endpoint, from: endpoint.address, transactionID: transactionID) else {
            return false
        }
        endpoint.routedTransactionID = transactionID
        return true
    }

    private func unroute(_ endpoint: UDPTrackerEndpoint) {
        guard let routed = endpoint.routedTransactionID else { return }
        endpoint.routedTransactionID = nil
        udpTransport.unroute(from: endpoint.address, transactionID: routed)
    }

    private func finishUDP(_ endpoint: UDPTrackerEndpoint, _ reply: Reply, now: UInt64?) {
        guard let (id, _, _) = endpoint.active else { return }
        endpoint.active = nil
        endpoint.retryAt = nil
        unroute(endpoint)
        finished.append((id, reply))
        if let now { startWaiting(endpoint, now: now) }
    }

    /// The tracker's answer to the endpoint's current transaction id, from the transport.
    fileprivate func udpDatagram(
        _ datagram: UnsafeRawBufferPointer, for endpoint: UDPTrackerEndpoint, now: UInt64
    ) {
        let before = finished.count
        perform(
            endpoint.client.receive(datagram: datagram, now: Instant(nanoseconds: now)), on: endpoint,
            now: now)
        if let grant = endpoint.client.connectionGrant {
            udpTransport.recordGrant(grant, for: endpoint.address)
        }
        if finished.count > before { udpExchangeEnded?(now) }
    }

    /// ICMP "port unreachable" (or a failed send): nobody is there, so the exchange fails now rather
    /// than after BEP 15's hour of retransmissions.
    fileprivate func udpFailed(_ endpoint: UDPTrackerEndpoint, errno: Errno, call: String, now: UInt64) {
        // The transport has dropped the route.
        endpoint.routedTransactionID = nil
        guard endpoint.active != nil else { return }
        endpoint.client.cancel()
        finishUDP(
            endpoint, .failed(.system(call: "\(call) udp://\(endpoint.address)", errno: errno)), now: now)
        udpExchangeEnded?(now)
    }
}

extension TrackerURL {
    /// `https://host:port`: enough to name a tracker in an error, without its query.
    fileprivate var origin: String { "\(scheme.rawValue)://\(host):\(port)" }
}

extension Operation {
    fileprivate var kindName: String {
        switch self {
        case .connect: "connect"
        case .send: "send"
        case .receive: "recv"
        default: "operation"
        }
    }
}

/// One HTTP exchange: its socket, the request being sent and the buffer being received into.
private final class HTTPExchange {
    let id: TrackerClient.ExchangeID
    let query: TrackerClient.Query
    var session: HTTPTrackerSession
    let buffer: UnsafeMutableRawBufferPointer
    let deadline: UInt64
    var fd: Int32 = -1
    var address: SocketAddress?
    /// The HTTP request (plaintext).
    var request: [UInt8] = []
    /// What is being sent: the request, or TLS records carrying it.
    var outgoing: [UInt8] = []
    var sendOffset = 0
    var tls: TLSConnection?
    var stage = "connect"
    var operationInFlight = false
    var abandoned = false
    /// A connection waiting for its host's lookup or the certificate store (`tick` tries again).
    var parkedConnect: (url: TrackerURL, request: [UInt8])?

    init(
        id: TrackerClient.ExchangeID, query: TrackerClient.Query, session: HTTPTrackerSession,
        bufferBytes: Int, deadline: UInt64
    ) {
        self.id = id
        self.query = query
        self.session = session
        self.buffer = .allocate(byteCount: bufferBytes, alignment: 16)
        self.deadline = deadline
    }

    var addressText: String { address.map { "\($0)" } ?? "?" }

    deinit {
        // With an operation still in flight (only at shutdown) the kernel may yet write here: keep it.
        if !operationInFlight { buffer.deallocate() }
    }
}

/// One tracker address's exchanges of one client: its BEP 15 client, the exchange asked now and those
/// waiting. Datagrams reach it through the transport, routed by its current transaction id.
private final class UDPTrackerEndpoint: UDPTrackerReceiver {
    let address: SocketAddress
    weak var owner: TrackerClient?
    var client: UDPTrackerClient
    var active: (id: TrackerClient.ExchangeID, query: TrackerClient.Query, url: TrackerURL)?
    var waiting: [(id: TrackerClient.ExchangeID, query: TrackerClient.Query, url: TrackerURL)] = []
    var retryAt: Instant?
    /// The transaction id the transport routes here (nil: none).
    var routedTransactionID: UInt32?
    /// Transaction ids drawn in a row for the active exchange that another client already waited for.
    var transactionIDDraws = 0
    /// Datagrams ignored so far (unexpected action, too short).
    var ignoredCount = 0

    init(address: SocketAddress, owner: TrackerClient, client: UDPTrackerClient) {
        self.address = address
        self.owner = owner
        self.client = client
    }

    func udpDatagram(_ datagram: UnsafeRawBufferPointer, now: UInt64) {
        owner?.udpDatagram(datagram, for: self, now: now)
    }

    func udpFailed(_ errno: Errno, call: String, now: UInt64) {
        owner?.udpFailed(self, errno: errno, call: call, now: now)
    }
}
