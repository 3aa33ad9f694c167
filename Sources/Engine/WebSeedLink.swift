import Glibc
import Hashing
import OutboundHTTP
import Swarm
import TLS
import TorrentModel
import Tracker
import URing
import WebSeed

/// One web seed (BEP 19) as the session drives it: a slot in the request pipeline that has every piece,
/// the blocks the pipeline gave it, the HTTP ranges they became, and its connection.
///
/// Invariants: every block in `blocks`, in a fetch of `queued` or `sent`, or partly in `blockBytes` was
/// requested from `slot` by the pipeline (it may have been cancelled since: web seeds cannot take
/// back a range, so its bytes still arrive and are offered to the picker); `sent` are answered in
/// order on `connection`, `parser` reading the answer to `sent[0]` once its first byte arrived; the
/// pipeline counts the seed as unchoking us only while `unchoked` (it is connected, or between
/// keep-alive connections, and not backing off).
final class WebSeedLink {
    /// A range of one file to ask for, at the URL the file is served from (after redirects).
    struct Fetch {
        var plan: PlannedFetch
        var url: TrackerURL
        var redirects = 0
    }

    let slot: PeerSlot
    /// The URL as given (the torrent's `url-list` or `--web-seed`), for logs.
    let name: String
    let baseURL: TrackerURL
    var connection: WebSeedConnection?
    /// Blocks the pipeline gave it since the last planning.
    var blocks: [BlockRange] = []
    var queued: [Fetch] = []
    var sent: [Fetch] = []
    var parser: RangeResponseParser?
    /// Bytes received of blocks that are not complete yet.
    var blockBytes: [BlockRange: Int] = [:]
    /// Blocks whose bytes found no piece buffer (or were not wanted any more): returned when complete.
    var unusableBlocks: Set<BlockRange> = []
    var backoff = WebSeedBackoff()
    /// Resting after a failure until then (nanoseconds on the reactor's clock).
    var retryAt: UInt64?
    /// Its `https` connection waits for the certificate store to load: tried again as soon as it has.
    var waitingForTLSContext = false
    var unchoked = false
    var dropped = false
    /// Connections closed by the server before answering anything, in a row.
    var earlyCloses = 0
    /// When a byte of a body last arrived (or the first request went out).
    var lastProgress: UInt64 = 0
    /// Payload bytes of blocks it sent that the pipeline took.
    var receivedBytes: Int64 = 0
    /// Where each file is served, once a redirect moved it.
    var fileURLs: [Int: TrackerURL] = [:]

    init(slot: PeerSlot, name: String, baseURL: TrackerURL) {
        self.slot = slot
        self.name = name
        self.baseURL = baseURL
    }

    /// Forgets every block and range (the pipeline takes the blocks back separately).
    func clearWork() {
        blocks.removeAll()
        queued.removeAll()
        sent.removeAll()
        parser = nil
        blockBytes.removeAll()
        unusableBlocks.removeAll()
    }
}

/// One HTTP or HTTPS connection to a web seed: its socket, its TLS session for `https`, the bytes
/// being sent and the buffer it reads into.
///
/// Invariants: at most one connect, one send and one receive are in flight; `sending[sendOffset...]`
/// is what the send in flight carries, and `outgoing` what waits for it to complete (for `https`,
/// ciphertext: requests are written into `tls`); the socket is closed and the buffer freed only once
/// nothing is in flight (until then the kernel may still write to the buffer).
final class WebSeedConnection {
    /// Bytes read per receive.
    static let receiveBufferBytes = 256 * 1024

    let fd: Int32
    /// `scheme://host:port` this connection reaches: requests to another origin need another connection.
    let origin: String
    /// The TLS session of an `https` connection.
    let tls: TLSConnection?
    let buffer: UnsafeMutableRawBufferPointer
    var connected = false
    var connectInFlight = false
    var sendInFlight = false
    var receiveInFlight = false
    var sending: [UInt8] = []
    var sendOffset = 0
    var outgoing: [UInt8] = []
    var closing = false
    private var released = false

    init(fd: Int32, origin: String, tls: TLSConnection?) {
        self.fd = fd
        self.origin = origin
        self.tls = tls
        buffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 64)
    }

    var hasOperationsInFlight: Bool { connectInFlight || sendInFlight || receiveInFlight }

    /// Queues request bytes to send: as they are, or encrypted once the handshake allows.
    func write(_ request: [UInt8]) throws(TLSError) {
        guard let tls else {
            outgoing += request
            return
        }
        tls.write(request)
        try tls.encryptPending()
        outgoing += tls.takeOutput()
    }

    /// The plaintext in received bytes (the bytes themselves without TLS); what TLS wants to answer
    /// (handshake messages) is queued to send.
    func decrypt(_ received: UnsafeRawBufferPointer) throws(TLSError) -> [UInt8]? {
        guard let tls else { return nil }
        try tls.receive(received)
        let plaintext = try tls.advance()
        outgoing += tls.takeOutput()
        return plaintext
    }

    /// Starts the TLS handshake once connected: its first message is queued to send.
    func startTLS() throws(TLSError) {
        guard let tls else { return }
        try tls.encryptPending()
        outgoing += tls.takeOutput()
    }

    /// Moves the queued bytes into `sending` when no send is in flight; whether there is one to submit.
    func takeNextSend() -> Bool {
        guard !sendInFlight, !closing, !outgoing.isEmpty else { return false }
        swap(&sending, &outgoing)
        outgoing.removeAll(keepingCapacity: true)
        sendOffset = 0
        return true
    }

    /// Ends the connection: operations in flight complete (with errors) and then it is released.
    func close() {
        closing = true
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        releaseIfIdle()
    }

    func releaseIfIdle() {
        guard closing, !hasOperationsInFlight, !released else { return }
        released = true
        Glibc.close(fd)
        buffer.deallocate()
    }
}

extension TrackerURL {
    /// `scheme://host:port`, the connection a request to this URL travels on.
    var connectionOrigin: String { "\(scheme.rawValue)://\(host):\(port)" }
}

/// The torrent's web seeds and what they share: their ring operations' table and the host lookups.
final class WebSeedPool {
    /// The owner byte in completion tokens (peers 1, storage 2, recheck 3, listener 4, trackers 5,
    /// handshake router 6).
    static let owner: UInt8 = 7
    /// Web seeds used per torrent: a torrent lists a few mirrors; more would only multiply connections.
    static let maxSeeds = 16
    /// Ranges sent on one connection before their answers arrive (HTTP/1.1 pipelining).
    static let maxFetchesInFlight = 4
    /// The largest range asked for at once.
    static let maxFetchBytes = 4 << 20
    /// A seed that sends no body byte for this long while ranges are outstanding is given up on for now.
    static let stallNanoseconds: UInt64 = 30_000_000_000
    /// Blocks the pipeline may give one seed at once (its request queue).
    static let requestQueueBlocks = 500

    struct Operation {
        let seed: WebSeedLink
        let connection: WebSeedConnection
    }

    var seeds: [WebSeedLink] = []
    var table: OperationTable<Operation>
    let resolver: HostResolver
    let userAgent = "Potluck/\(potluckVersion)"
    /// Whom `https` seeds must be trusted by: the system store and a CA file given, loaded for the
    /// first `https` seed.
    let tlsContexts: TLSContextLoader

    init(tenant: UInt16, resolver: HostResolver, tlsContexts: TLSContextLoader) {
        // Each seed has at most a connect, a send and a receive in flight, plus those of a connection
        // that is closing.
        table = OperationTable(capacity: Self.maxSeeds * 6 + 2, owner: Self.owner, tenant: tenant)
        self.resolver = resolver
        self.tlsContexts = tlsContexts
    }

    /// The TLS client for a connection to `url`, checking the server's certificate; nil while the
    /// certificate store loads (off the reactor).
    func makeTLS(for url: TrackerURL) throws(TLSError) -> TLSConnection? {
        guard let context = tlsContexts.context() else { return nil }
        return try TLSConnection(context: context.get(), for: url)
    }

    /// The seed that owns pipeline slot `slot`, if it is still in use.
    func seed(at slot: PeerSlot) -> WebSeedLink? { seeds.first { $0.slot == slot && !$0.dropped } }

    var hasOperationsInFlight: Bool { table.inUseCount > 0 }
}
