import Glibc
import Hashing
import Swarm
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

/// One HTTP connection to a web seed: its socket, the request bytes being sent and the buffer it reads
/// into.
///
/// Invariants: at most one connect, one send and one receive are in flight; the socket is closed and
/// the buffer freed only once none is (until then the kernel may still write to the buffer).
final class WebSeedConnection {
    /// Bytes read per receive.
    static let receiveBufferBytes = 256 * 1024

    let fd: Int32
    /// `host:port` this connection reaches: requests to another origin need another connection.
    let origin: String
    let buffer: UnsafeMutableRawBufferPointer
    var connected = false
    var connectInFlight = false
    var sendInFlight = false
    var receiveInFlight = false
    var sending: [UInt8] = []
    var sendOffset = 0
    var closing = false
    private var released = false

    init(fd: Int32, origin: String) {
        self.fd = fd
        self.origin = origin
        buffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 64)
    }

    var hasOperationsInFlight: Bool { connectInFlight || sendInFlight || receiveInFlight }

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
    /// `host:port`, the connection a request to this URL travels on.
    var connectionOrigin: String { "\(host):\(port)" }
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

    init(tenant: UInt16, resolver: HostResolver) {
        // Each seed has at most a connect, a send and a receive in flight, plus those of a connection
        // that is closing.
        table = OperationTable(capacity: Self.maxSeeds * 6 + 2, owner: Self.owner, tenant: tenant)
        self.resolver = resolver
    }

    /// The seed that owns pipeline slot `slot`, if it is still in use.
    func seed(at slot: PeerSlot) -> WebSeedLink? { seeds.first { $0.slot == slot && !$0.dropped } }

    var hasOperationsInFlight: Bool { table.inUseCount > 0 }
}
