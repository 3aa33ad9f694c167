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
