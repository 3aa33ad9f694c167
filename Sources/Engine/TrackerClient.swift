import Glibc
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
/// which ``tick(now:)`` checks.
///
/// Invariants: at most one operation per HTTP exchange is in flight (connect, send or receive; each with
/// its linked timeout), and its buffers live in the exchange until that operation completes; per UDP
/// tracker address there is one connected socket, at most one receive and one send in flight, and at
/// most one exchange active (others wait in `waiting`); a slot's context is released when its main
/// operation completes, so a linked timeout's completion arriving later is recognised as stale.
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
        /// Larger than any UDP datagram, so a reply is never silently cut.
        var udpReceiveBufferBytes = 65_536
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

    private enum SlotOwner {
        case http(ExchangeID)
        case udp(SocketAddress)
    }

    let limits: Limits
    private let ring: Ring
    private let userAgent: String
    private let resolver: HostResolver
    /// The context of `https` trackers (the system store and any extra CA file), loaded off the
    /// reactor thread at the first `https` exchange.
    private let tlsContexts: TLSContextLoader
    private var table: OperationTable<SlotOwner>
    private var nextID: ExchangeID = 1
    private var http: [ExchangeID: HTTPExchange] = [:]
    private var udp: [SocketAddress: UDPEndpoint] = [:]
    private var finished: [(ExchangeID, Reply)] = []
    private var random: SeededRandom
    private let log: (String) -> Void

    init(
        ring: Ring, tenant: UInt16 = 0, limits: Limits = Limits(), seed: UInt64, resolver: HostResolver,
        extraCAFile: String? = nil,
        log: @escaping (String) -> Void
    ) {
        self.ring = ring
        tlsContexts = TLSContextLoader(extraCAFile: extraCAFile, waker: ring.waker)
        self.limits = limits
        self.resolver = resolver
        self.userAgent = "Potluck/\(potluckVersion)"
        self.random = SeededRandom(seed: seed)
        self.log = log
        // Each exchange has at most two operations in flight (a UDP receive and send).
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

    /// Closes every socket. Exchanges still running are dropped without a reply.
    func closeAll() {
        for exchange in http.values where exchange.fd >= 0 {
            Glibc.close(exchange.fd)
            exchange.fd = -1
        }
        http.removeAll()
        for endpoint in udp.values { endpoint.close() }
        udp.removeAll()
    }

    /// Time passed: BEP 15 retransmissions and give-ups.
    func tick(now: UInt64) {
        let instant = Instant(nanoseconds: now)
        for endpoint in udp.values {
            if let retryAt = endpoint.retryAt, retryAt <= instant {
                endpoint.retryAt = nil
                perform(endpoint.client.tick(now: instant), on: endpoint, now: now)
            }
            startWaiting(endpoint, now: now)
        }
    }

    /// A completion whose token carries ``owner``.
    func handle(_ completion: Completion, now: UInt64) {
        // A linked timeout's own completion says nothing the operation's completion will not.
        guard completion.token.kind != .linkTimeout else { return }
        guard let owner = table.context(for: completion.slot) else { return }
        table.release(completion.slot)
        switch owner {
        case .http(let id):
            guard let exchange = http[id] else { return }
            httpCompleted(completion, exchange: exchange, now: now)
        case .udp(let address):
            guard let endpoint = udp[address] else { return }
            udpCompleted(completion, endpoint: endpoint, now: now)
        }
    }

    // MARK: Submitting

    /// Queues `operation`, bounded by `timeoutNanoseconds` when given; false if no slot or no room.
    private func submit(_ operation: Operation, for owner: SlotOwner, timeoutNanoseconds: UInt64?) -> Bool {
        guard let slot = table.acquire(owner) else { return false }
        do {
            if let timeoutNanoseconds {
                try ring.enqueue(operation, for: slot, flags: .link)
                try ring.enqueue(.linkTimeout(.nanoseconds(Int64(timeoutNanoseconds))), for: slot)
            } else {
                try ring.enqueue(operation, for: slot)
            }
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
        if case .pending = resolver.lookup(name) { return true }
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
        if submit(operation, for: .http(exchange.id), timeoutNanoseconds: max(1_000_000, timeoutNanoseconds))
        {
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
        finished.append((exchange.id, reply))
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
        let endpoint: UDPEndpoint
        if let existing = udp[address], !existing.broken {
            endpoint = existing
        } else {
            if let old = udp[address] {
                // A socket that failed: its operations have completed or will be ignored as stale.
                guard !old.operationsInFlight else {
                    finished.append(
                        (id, .failed(.system(call: "UDP socket to \(address)", errno: .resourceBusy))))
                    return
                }
                old.close()
            }
            do throws(TrackerFailure) {
                endpoint = try UDPEndpoint(
                    address: address, bufferBytes: limits.udpReceiveBufferBytes,
                    client: UDPTrackerClient(
                        family: address.family == AF_INET6 ? .ipv6 : .ipv4,
                        random: SeededRandom(seed: random.next()), options: limits.udp, limits: limits.tracker
                    ))
            } catch {
                finished.append((id, .failed(error)))
                return
            }
            udp[address] = endpoint
            armReceive(endpoint)
        }
        endpoint.waiting.append((id, query, url))
        startWaiting(endpoint, now: now)
    }

    private func startWaiting(_ endpoint: UDPEndpoint, now: UInt64) {
        guard endpoint.active == nil, !endpoint.waiting.isEmpty else { return }
        let (id, query, url) = endpoint.waiting.removeFirst()
        endpoint.active = (id, url)
        let request: UDPTrackerClient.Request =
            switch query {
            case .announce(let announce): .announce(announce)
            case .scrape(let infoHashes): .scrape(infoHashes)
            }
        perform(endpoint.client.start(request, now: Instant(nanoseconds: now)), on: endpoint, now: now)
    }

    private func perform(_ actions: [UDPTrackerClient.Action], on endpoint: UDPEndpoint, now: UInt64) {
        for action in actions {
            switch action {
            case .send(let datagram):
                endpoint.queuedSends.append(datagram)
                sendNext(endpoint)
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
    }

    private func finishUDP(_ endpoint: UDPEndpoint, _ reply: Reply, now: UInt64?) {
        guard let (id, _) = endpoint.active else { return }
        endpoint.active = nil
        endpoint.retryAt = nil
        finished.append((id, reply))
        if let now { startWaiting(endpoint, now: now) }
    }

    private func sendNext(_ endpoint: UDPEndpoint) {
        guard !endpoint.sendInFlight, !endpoint.broken, !endpoint.queuedSends.isEmpty else { return }
        endpoint.sending = endpoint.queuedSends.removeFirst()
        let bytes = endpoint.sending.withUnsafeBytes { UnsafeRawBufferPointer($0) }
        if submit(.send(fd: endpoint.fd, bytes: bytes), for: .udp(endpoint.address), timeoutNanoseconds: nil)
        {
            endpoint.sendInFlight = true
        }
        // Not queued: the retransmission timer sends again.
    }

    private func armReceive(_ endpoint: UDPEndpoint) {
        guard !endpoint.receiveInFlight, !endpoint.broken else { return }
        if submit(
            .receive(fd: endpoint.fd, into: endpoint.buffer), for: .udp(endpoint.address),
            timeoutNanoseconds: nil)
        {
            endpoint.receiveInFlight = true
        }
    }

    private func udpCompleted(_ completion: Completion, endpoint: UDPEndpoint, now: UInt64) {
        let result = completion.result
        switch completion.token.kind {
        case .send:
            endpoint.sendInFlight = false
            if result < 0 { udpFailed(endpoint, call: "send to", result: result, now: now) }
            sendNext(endpoint)
        case .receive:
            endpoint.receiveInFlight = false
            guard result >= 0 else {
                udpFailed(endpoint, call: "recv from", result: result, now: now)
                armReceive(endpoint)
                return
            }
            let datagram = UnsafeRawBufferPointer(rebasing: endpoint.buffer[..<Int(result)])
            perform(
                endpoint.client.receive(datagram: datagram, now: Instant(nanoseconds: now)),
                on: endpoint,
                now: now)
            armReceive(endpoint)
        default:
            break
        }
    }

    /// ICMP "port unreachable" shows up as ECONNREFUSED on a connected UDP socket: nobody is there, so
    /// the exchange fails now rather than after BEP 15's hour of retransmissions. Other errors end the
    /// socket; the next exchange opens a new one.
    private func udpFailed(_ endpoint: UDPEndpoint, call: String, result: Int32, now: UInt64) {
        let errno = Errno(rawValue: -result)
        if result != -ECONNREFUSED && result != -EINTR && result != -EAGAIN {
            endpoint.broken = true
        }
        guard endpoint.active != nil else { return }
        endpoint.client.cancel()
        finishUDP(
            endpoint, .failed(.system(call: "\(call) udp://\(endpoint.address)", errno: errno)), now: now)
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

/// The connected UDP socket for one tracker address and its BEP 15 client.
private final class UDPEndpoint {
    let address: SocketAddress
    let fd: Int32
    var client: UDPTrackerClient
    let buffer: UnsafeMutableRawBufferPointer
    var active: (id: TrackerClient.ExchangeID, url: TrackerURL)?
    var waiting: [(id: TrackerClient.ExchangeID, query: TrackerClient.Query, url: TrackerURL)] = []
    var retryAt: Instant?
    var sending: [UInt8] = []
    var queuedSends: [[UInt8]] = []
    var sendInFlight = false
    var receiveInFlight = false
    /// Datagrams ignored so far (wrong transaction id, unexpected action, too short).
    var ignoredCount = 0
    /// The socket failed; a new one is opened for the next exchange.
    var broken = false
    private var closed = false

    init(address: SocketAddress, bufferBytes: Int, client: UDPTrackerClient) throws(TrackerFailure) {
        let fd = Glibc.socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(call: "socket", errno: Errno(rawValue: errno)) }
        // Connected: the kernel then drops datagrams from any other address, and reports ICMP errors.
        do {
            try Socket.connectBlocking(fd, to: address)
        } catch {
            Glibc.close(fd)
            throw .system(call: "connect udp://\(address)", errno: error.errno)
        }
        self.address = address
        self.fd = fd
        self.client = client
        self.buffer = .allocate(byteCount: bufferBytes, alignment: 16)
    }

    var operationsInFlight: Bool { sendInFlight || receiveInFlight }

    func close() {
        guard !closed else { return }
        closed = true
        broken = true
        Glibc.close(fd)
    }

    deinit {
        close()
        if !receiveInFlight { buffer.deallocate() }
    }
}
