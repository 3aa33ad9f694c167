import Glibc
import Locking

/// A socket the `HandshakeRouter` hands to a session, with the plain peer-wire bytes the router has
/// already read from it (the start of its handshake, or what followed an encryption exchange).
struct RoutedConnection: Sendable {
    let fd: Int32
    /// Nil: nothing read yet. Otherwise the peer's first plain bytes (its handshake, usually).
    let plaintextRead: [UInt8]?
}

/// Connections handed to one session by the engine's `HandshakeRouter`: a thread-safe queue of accepted sockets
/// whose handshakes name the session's torrent, with a wake-up for the session's reactor.
public final class IncomingInbox: Sendable {
    private struct State {
        var descriptors: [RoutedConnection] = []
        var doorbell: (inbox: ReactorInbox, tenant: UInt16)?
        var closed = false
    }

    private let state = Lock(State())

    public init() {}

    /// Sockets one inbox holds at most: a torrent takes them only once it trades, and peers that
    /// redial through an hours-long check would otherwise hold descriptors until the process has none.
    static let maximumWaiting = 64  // named in `Refusal.full`

    /// From the router's thread: the session takes ownership of the socket, or the reason it does
    /// not (close it).
    func deliver(_ connection: RoutedConnection) -> String? {
        let doorbell: Result<(inbox: ReactorInbox, tenant: UInt16)?, Refusal> = state.withLock { state in
            guard !state.closed else { return .failure(.stopped) }
            guard state.descriptors.count < Self.maximumWaiting else { return .failure(.full) }
            state.descriptors.append(connection)
            return .success(state.doorbell)
        }
        switch doorbell {
        case .failure(let refusal): return refusal.rawValue
        case .success(let bell):
            if let (inbox, tenant) = bell { inbox.ring(tenant) }
            return nil
        }
    }

    private enum Refusal: String, Error {
        case stopped = "its torrent has stopped"
        case full = "its torrent is not taking peers yet (checking, or 64 waiting already)"
    }

    /// From the session's reactor, once it hosts the session as `tenant`.
    func attach(_ doorbell: ReactorInbox, tenant: UInt16) {
        let pending = state.withLock { state in
            state.doorbell = (doorbell, tenant)
            return !state.descriptors.isEmpty
        }
        if pending { doorbell.ring(tenant) }
    }

    /// Whether a connection waits to be taken.
    var hasWaiting: Bool { state.withLock { !$0.descriptors.isEmpty } }

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
