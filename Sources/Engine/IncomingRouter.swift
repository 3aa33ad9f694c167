import Glibc
import PeerWire
import Synchronization
import TorrentModel
import URing

/// A socket an `IncomingRouter` hands to a session: unread (a plain handshake waits in it), or after an
/// encryption exchange the router answered, with the plain peer-wire bytes it has already read.
struct RoutedConnection: Sendable {
    let fd: Int32
    /// Nil: nothing read yet. Otherwise the peer's first plain bytes (its handshake, usually).
    let plaintextRead: [UInt8]?
}

/// Connections handed to one session by an `IncomingRouter`: a thread-safe queue of accepted sockets
/// whose handshakes name the session's torrent, with a wake-up for the session's reactor.
public final class IncomingInbox: Sendable {
    private struct State {
        var descriptors: [RoutedConnection] = []
        var doorbell: (inbox: ReactorInbox, tenant: UInt16)?
        var closed = false
    }

    private let state = Mutex(State())

    public init() {}

    /// From the router's thread: the session takes ownership of the socket (false: it has stopped,
    /// close it).
    func deliver(_ connection: RoutedConnection) -> Bool {
        let doorbell: (inbox: ReactorInbox, tenant: UInt16)?? = state.withLock { state in
            guard !state.closed else { return nil }
            state.descriptors.append(connection)
            return .some(state.doorbell)
        }
        guard let doorbell else { return false }
        if let (inbox, tenant) = doorbell { inbox.ring(tenant) }
        return true
    }

    /// From the session's reactor, once it hosts the session as `tenant`.
    func attach(_ doorbell: ReactorInbox, tenant: UInt16) {
        let pending = state.withLock { state in
            state.doorbell = (doorbell, tenant)
            return !state.descriptors.isEmpty
        }
        if pending { doorbell.ring(tenant) }
    }

    func take(into descriptors: inout [RoutedConnection]) {
        state.withLock { state in
            descriptors.append(contentsOf: state.descriptors)
            state.descriptors.removeAll(keepingCapacity: true)
        }
    }

    /// The session stopped (or never ran): later connections are refused, and those not yet taken are
    /// closed.
    public func close() {
        let left = state.withLock { state in
            state.closed = true
            defer { state.descriptors.removeAll() }
            return state.descriptors
        }
        for connection in left { Glibc.close(connection.fd) }
    }
}

/// One listening socket for several torrents: accepts peers, waits (without reading) until a peer's
/// handshake has named its info hash, then hands the socket to that torrent's session, which reads the
/// handshake itself as for any incoming connection. A peer that opens with the encryption exchange
/// (MSE/PE) is answered here instead (the exchange names the torrent only once it is under way), with
/// plaintext chosen; the session gets the socket and the plain bytes read so far.
///
/// Runs on its own thread with poll(2): it handles only connection set-up, never payload. Invariants:
/// at most `maximumHalfOpen` connections wait for their handshake, each at most `handshakeTimeoutSeconds`;
/// every accepted socket is either delivered to exactly one session or closed, with a log line saying why.
/// `run` belongs to one thread; `register` and `unregister` may be called from any (hence unchecked
/// `Sendable`: the registrations are behind a mutex, the rest is the running thread's own).
public final class IncomingRouter: @unchecked Sendable {
    public let boundAddress: SocketAddress
    public var maximumHalfOpen = 64
    public var handshakeTimeoutSeconds = 10
    private let listenerFD: Int32
    /// Registered from any thread (torrents come and go while the router runs).
    private let sessions = Mutex<[InfoHash: IncomingInbox]>([:])
    private struct Pending {
        let fd: Int32
        let address: SocketAddress?
        let deadline: ContinuousClock.Instant
        /// The encryption exchange, once the peer's first bytes showed it opened with one.
        var encryption: EncryptionHandshakeResponder?
    }

    private var pending: [Pending] = []
    /// Accepting failed for want of descriptors or memory: the listener is left alone until then.
    private var acceptPausedUntil: ContinuousClock.Instant?
    private var loggedAcceptErrors: Set<Int32> = []
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
        sessions.withLock { $0[infoHash] = inbox }
    }

    /// Stops routing connections for `infoHash` (its torrent is gone).
    public func unregister(_ infoHash: InfoHash) {
        sessions.withLock { _ = $0.removeValue(forKey: infoHash) }
    }

    /// Accepts and routes until `shouldStop` says so (it is asked at least ten times a second).
    public func run(shouldStop: () -> Bool) {
        var descriptors: [pollfd] = []
        var peek = [UInt8](repeating: 0, count: HandshakePrefix.byteCount)
        while !shouldStop() {
            descriptors.removeAll(keepingCapacity: true)
            // poll skips a negative descriptor: the listener, while accepting is paused.
            let accepting = acceptPausedUntil.map { ContinuousClock.now >= $0 } ?? true
            descriptors.append(pollfd(fd: accepting ? listenerFD : -1, events: Int16(POLLIN), revents: 0))
            for connection in pending {
                descriptors.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0))
            }
            let ready = poll(&descriptors, nfds_t(descriptors.count), 100)
            guard ready >= 0 || errno == EINTR else {
                log("router: poll: \(Errno(rawValue: errno))")
                return
            }
            let now = ContinuousClock.now
            var kept: [Pending] = []
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
                if connection.encryption != nil {
                    if let still = continueEncryption(connection) { kept.append(still) }
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
                    // Taken for the encryption exchange; bytes that are not one fail it with a reason.
                    var encrypted = connection
                    encrypted.encryption = EncryptionHandshakeResponder(
                        knownInfoHashes: sessions.withLock { Array($0.keys) },
                        privateKey: Self.randomBytes(20),
                        padding: Self.randomBytes(Int.random(in: 0...64)))
                    if let still = continueEncryption(encrypted) { kept.append(still) }
                case .infoHash(let infoHash):
                    guard let inbox = sessions.withLock({ $0[infoHash] }) else {
                        drop(
                            connection.fd, connection.address,
                            "asks for a torrent we do not serve (\(infoHash))")
                        continue
                    }
                    if !inbox.deliver(RoutedConnection(fd: connection.fd, plaintextRead: nil)) {
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
            guard fd >= 0 else {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { return }
                if error == ECONNABORTED { continue }
                // Out of descriptors (or memory): the listener stays readable, and accepting again at
                // once would spin. Pause, and say so once per reason.
                if loggedAcceptErrors.insert(error).inserted {
                    log(
                        "router: accept: \(Errno(rawValue: error)); incoming peers wait until it clears (said once)"
                    )
                }
                acceptPausedUntil = now + .milliseconds(250)
                return
            }
            acceptPausedUntil = nil
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let address = try? Socket.peerAddress(of: fd)
            guard pending.count < maximumHalfOpen else {
                drop(fd, address, "\(maximumHalfOpen) connections already wait for their handshake")
                continue
            }
            pending.append(
                Pending(fd: fd, address: address, deadline: now + .seconds(handshakeTimeoutSeconds)))
        }
    }

    /// Reads what the peer sent and advances its encryption exchange: the connection to keep waiting
    /// on, or nil once it is delivered or dropped.
    private func continueEncryption(_ connection: Pending) -> Pending? {
        var connection = connection
        guard var exchange = connection.encryption else { return connection }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes {
            recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
        }
        guard count > 0 else {
            if count < 0 && (errno == EAGAIN || errno == EINTR) { return connection }
            drop(connection.fd, connection.address, "closed during the encryption exchange")
            return nil
        }
        let step: EncryptionHandshakeResponder.Step
        do {
            step = try exchange.receive(buffer[..<count])
        } catch {
            drop(connection.fd, connection.address, "encrypted handshake refused: \(error)")
            return nil
        }
        // At most a key, padding and a 14-byte answer: a fresh socket's buffer takes them at once.
        let reply = exchange.takeOutbound()
        if !reply.isEmpty {
            let sent = reply.withUnsafeBytes {
                send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            guard sent == reply.count else {
                drop(connection.fd, connection.address, "could not answer its encryption exchange")
                return nil
            }
        }
        switch step {
        case .needMoreBytes:
            connection.encryption = exchange
            return connection
        case .established(let infoHash, let plaintext):
            guard let inbox = sessions.withLock({ $0[infoHash] }) else {
                drop(connection.fd, connection.address, "asks for a torrent we do not serve (\(infoHash))")
                return nil
            }
            log(
                "peer \(connection.address.map { "\($0)" } ?? "?"): encrypted handshake (MSE/PE) done, plaintext selected"
            )
            if !inbox.deliver(RoutedConnection(fd: connection.fd, plaintextRead: plaintext)) {
                drop(connection.fd, connection.address, "its torrent has stopped")
            }
            return nil
        }
    }

    private static func randomBytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255) }
    }

    private func drop(_ fd: Int32, _ address: SocketAddress?, _ reason: String) {
        log("peer \(address.map { "\($0)" } ?? "?"): \(reason)")
        Glibc.close(fd)
    }
}
