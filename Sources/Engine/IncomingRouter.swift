import Glibc
import PeerWire
import Synchronization
import TorrentModel
import URing

/// Connections handed to one session by an `IncomingRouter`: a thread-safe queue of accepted sockets
/// whose handshakes name the session's torrent, with a wake-up for the session's reactor.
public final class IncomingInbox: Sendable {
    private struct State {
        var descriptors: [Int32] = []
        var waker: RingWaker?
        var closed = false
    }

    private let state = Mutex(State())

    public init() {}

    /// From the router's thread: the session takes ownership of `fd` (nil: it has stopped, close it).
    func deliver(_ fd: Int32) -> Bool {
        let waker: RingWaker?? = state.withLock { state in
            guard !state.closed else { return nil }
            state.descriptors.append(fd)
            return .some(state.waker)
        }
        guard let waker else { return false }
        waker?.wake()
        return true
    }

    /// From the session's thread, once its ring runs.
    func attach(_ waker: RingWaker) {
        let pending = state.withLock { state in
            state.waker = waker
            return !state.descriptors.isEmpty
        }
        if pending { waker.wake() }
    }

    func take(into descriptors: inout [Int32]) {
        state.withLock { state in
            descriptors.append(contentsOf: state.descriptors)
            state.descriptors.removeAll(keepingCapacity: true)
        }
    }

    /// The session stopped: later connections are refused, and those not yet taken are closed.
    func close() {
        let left = state.withLock { state in
            state.closed = true
            defer { state.descriptors.removeAll() }
            return state.descriptors
        }
        for fd in left { Glibc.close(fd) }
    }
}

/// One listening socket for several torrents: accepts peers, waits (without reading) until a peer's
/// handshake has named its info hash, then hands the socket to that torrent's session, which reads the
/// handshake itself as for any incoming connection.
///
/// Runs on its own thread with poll(2): it handles only connection set-up, never payload. Invariants:
/// at most `maximumHalfOpen` connections wait for their handshake, each at most `handshakeTimeoutSeconds`;
/// every accepted socket is either delivered to exactly one session or closed, with a log line saying why.
public final class IncomingRouter {
    public let boundAddress: SocketAddress
    public var maximumHalfOpen = 64
    public var handshakeTimeoutSeconds = 10
    private let listenerFD: Int32
    private var sessions: [InfoHash: IncomingInbox] = [:]
    private var pending: [(fd: Int32, address: SocketAddress?, deadline: ContinuousClock.Instant)] = []
    private let log: (String) -> Void

    public init(
        listenAddress: SocketAddress, log: @escaping (String) -> Void = { _ in }
    ) throws(DownloadError) {
        do {
            listenerFD = try Socket.listenTCP(on: listenAddress)
            boundAddress = try Socket.localAddress(of: listenerFD)
        } catch {
            throw .listen(error)
        }
        self.log = log
        _ = fcntl(listenerFD, F_SETFL, fcntl(listenerFD, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        Glibc.close(listenerFD)
        for connection in pending { Glibc.close(connection.fd) }
    }

    /// Routes connections for `infoHash` to `inbox` (the session's `DownloadOptions.incomingInbox`).
    public func register(_ infoHash: InfoHash, inbox: IncomingInbox) {
        sessions[infoHash] = inbox
    }

    /// Accepts and routes until `shouldStop` says so (it is asked at least ten times a second).
    public func run(shouldStop: () -> Bool) {
        var descriptors: [pollfd] = []
        var peek = [UInt8](repeating: 0, count: HandshakePrefix.byteCount)
        while !shouldStop() {
            descriptors.removeAll(keepingCapacity: true)
            descriptors.append(pollfd(fd: listenerFD, events: Int16(POLLIN), revents: 0))
            for connection in pending {
                descriptors.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0))
            }
            let ready = poll(&descriptors, nfds_t(descriptors.count), 100)
            guard ready >= 0 || errno == EINTR else {
                log("router: poll: \(Errno(rawValue: errno))")
                return
            }
            let now = ContinuousClock.now
            var kept: [(fd: Int32, address: SocketAddress?, deadline: ContinuousClock.Instant)] = []
            for (index, connection) in pending.enumerated() {
                let events = descriptors[index + 1].revents
                guard events != 0 else {
                    if now >= connection.deadline {
                        drop(
                            connection.fd, connection.address,
                            "no handshake within \(handshakeTimeoutSeconds) s")
                    } else {
                        kept.append(connection)
                    }
                    continue
                }
                let count = peek.withUnsafeMutableBytes {
                    recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_DONTWAIT))
                }
                guard count > 0 else {
                    if count < 0 && (errno == EAGAIN || errno == EINTR) {
                        kept.append(connection)
                    } else {
                        drop(connection.fd, connection.address, "closed before its handshake")
                    }
                    continue
                }
                switch HandshakePrefix.classify(peek[..<count]) {
                case .needMore:
                    kept.append(connection)
                case .notBitTorrent:
                    drop(connection.fd, connection.address, "not a plain BitTorrent handshake (encrypted?)")
                case .infoHash(let infoHash):
                    guard let inbox = sessions[infoHash] else {
                        drop(
                            connection.fd, connection.address,
                            "asks for a torrent we do not serve (\(infoHash))")
                        continue
                    }
                    if !inbox.deliver(connection.fd) {
                        drop(connection.fd, connection.address, "its torrent has stopped")
                    }
                }
            }
            pending = kept
            if descriptors[0].revents != 0 { acceptWaiting(now: now) }
        }
    }

    private func acceptWaiting(now: ContinuousClock.Instant) {
        while true {
            // The listener is non-blocking; on Linux accepted sockets do not inherit that.
            let fd = accept(listenerFD, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let address = try? Socket.peerAddress(of: fd)
            guard pending.count < maximumHalfOpen else {
                drop(fd, address, "\(maximumHalfOpen) connections already wait for their handshake")
                continue
            }
            pending.append((fd, address, now + .seconds(handshakeTimeoutSeconds)))
        }
    }

    private func drop(_ fd: Int32, _ address: SocketAddress?, _ reason: String) {
        log("peer \(address.map { "\($0)" } ?? "?"): \(reason)")
        Glibc.close(fd)
    }
}
