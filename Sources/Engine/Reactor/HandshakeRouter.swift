import Glibc
import Locking
import PeerWire
import TorrentModel
import URing

/// Which torrent's inbox takes a peer whose handshake names an info hash: registered from any thread
/// as torrents come and go, read by the router on its reactor.
public final class RouterDirectory: Sendable {
    private struct Entries {
        var inboxes: [InfoHash: IncomingInbox] = [:]
        /// A torrent's second id (a hybrid's truncated v2 infohash), by its first.
        var aliases: [InfoHash: InfoHash] = [:]
        /// Every id in `inboxes`, as an encrypted peer names it.
        var encrypted = EncryptedTorrentIndex()
    }

    private let entries = Lock(Entries())

    public init() {}

    /// Peers naming `infoHash`, or `alias` (a hybrid torrent's other id), go to `inbox`.
    public func register(_ infoHash: InfoHash, alias: InfoHash? = nil, inbox: IncomingInbox) {
        entries.withLock {
            $0.inboxes[infoHash] = inbox
            $0.encrypted.insert(infoHash)
            if let alias {
                $0.inboxes[alias] = inbox
                $0.aliases[infoHash] = alias
                $0.encrypted.insert(alias)
            }
        }
    }

    public func unregister(_ infoHash: InfoHash) {
        entries.withLock {
            $0.inboxes[infoHash] = nil
            $0.encrypted.remove(infoHash)
            if let alias = $0.aliases.removeValue(forKey: infoHash) {
                $0.inboxes[alias] = nil
                $0.encrypted.remove(alias)
            }
        }
    }

    func inbox(for infoHash: InfoHash) -> IncomingInbox? { entries.withLock { $0.inboxes[infoHash] } }

    /// The torrents an encrypted peer may name: a copy, shared until the directory next changes.
    var encryptedTorrents: EncryptedTorrentIndex { entries.withLock { $0.encrypted } }
}

/// One listening socket for every torrent of an engine, on a reactor's ring: accepts peers, reads each
/// one's opening until it names a torrent, then hands the socket and the bytes read so far to that
/// torrent's inbox (its reactor parses them as the start of the stream). A plain handshake names the
/// torrent in its first 48 bytes; a peer that opens with the encryption exchange (MSE/PE) is answered
/// here, with plaintext chosen, until the exchange names it.
///
/// Invariants: at most `maximumHalfOpen` peers wait, each at most `handshakeTimeoutSeconds`; each has
/// at most one receive in flight, into its own buffer, which is freed only once that receive has
/// completed (a dropped peer is shut down first, which completes it); every accepted socket is handed
/// to exactly one torrent or closed, with a log line saying why.
final class HandshakeRouter {
    static let owner: UInt8 = 6
    static let maximumHalfOpen = 64
    static let handshakeTimeoutSeconds: UInt64 = 10
    /// An MSE opening is at most a 96-byte key, 512 bytes of padding and the 20-byte hash it sends.
    static let receiveBufferBytes = 1024

    private final class Pending {
        let fd: Int32
        let address: SocketAddress?
        let deadline: UInt64
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: receiveBufferBytes, alignment: 16)
        /// Everything read so far, while the opening is plain.
        var received: [UInt8] = []
        var encryption: EncryptionHandshakeResponder?
        var receiveInFlight = false
        var dropped = false

        init(fd: Int32, address: SocketAddress?, deadline: UInt64) {
            self.fd = fd
            self.address = address
            self.deadline = deadline
        }

        deinit { buffer.deallocate() }
    }

    private let ring: Ring
    private let listenerFD: Int32
    private let directory: RouterDirectory
    private let log: (String) -> Void
    private var pending = OperationTable<Pending>(capacity: maximumHalfOpen, owner: owner)
    private var waiting: [OperationSlot] = []
    /// When to accept again after accepting failed for want of descriptors or memory.
    private var acceptRetryAt: UInt64?
    private var loggedAcceptErrors: Set<Errno> = []
    private static let acceptSlot = OperationSlot(
        owner: owner, index: OperationSlot.maximumIndex, generation: 1)

    init(ring: Ring, listenerFD: Int32, directory: RouterDirectory, log: @escaping (String) -> Void) {
        self.ring = ring
        self.listenerFD = listenerFD
        self.directory = directory
        self.log = log
    }

    deinit {
        Glibc.close(listenerFD)
        // The reactor is going: a receive still in flight must write nothing into a buffer about to go.
        for slot in waiting {
            guard let peer = pending.context(for: slot) else { continue }
            Glibc.shutdown(peer.fd, Int32(SHUT_RDWR))
            Glibc.close(peer.fd)
        }
    }

    func start() { armAccept() }

    private func armAccept() {
        do {
            try ring.enqueue(
                .accept(fd: listenerFD, multishot: ring.features.contains(.multishotAccept)),
                for: Self.acceptSlot)
        } catch {
            log("router: cannot accept: \(error)")
        }
    }

    /// A completion with this router's owner byte.
    func handle(_ completion: Completion, now: UInt64) {
        if completion.slot == Self.acceptSlot { return accepted(completion, now: now) }
        guard let peer = pending.context(for: completion.slot) else { return }
        peer.receiveInFlight = false
        if peer.dropped { return forget(completion.slot, peer) }
        guard completion.result > 0 else {
            return drop(completion.slot, peer, "closed before its handshake")
        }
        let bytes = UnsafeRawBufferPointer(rebasing: peer.buffer[..<Int(completion.result)])
        if peer.encryption != nil {
            continueEncryption(completion.slot, peer, with: bytes)
        } else {
            peer.received.append(contentsOf: bytes)
            switch HandshakePrefix.classify(peer.received) {
            case .needMore:
                receive(completion.slot, peer)
            case .notBitTorrent:
                // Taken for the encryption exchange; bytes that are not one fail it with a reason.
                peer.encryption = EncryptionHandshakeResponder(
                    torrents: directory.encryptedTorrents, privateKey: Self.randomBytes(20),
                    padding: Self.randomBytes(Int.random(in: 0...64)))
                let opening = peer.received
                peer.received = []
                opening.withUnsafeBytes { continueEncryption(completion.slot, peer, with: $0) }
            case .infoHash(let infoHash):
                deliver(completion.slot, peer, infoHash: infoHash, plaintext: peer.received)
            }
        }
    }

    /// Drops peers that have waited too long, and accepts again after a pause.
    func tick(now: UInt64) {
        if let retryAt = acceptRetryAt, now >= retryAt {
            acceptRetryAt = nil
            armAccept()
        }
        for slot in waiting {
            guard let peer = pending.context(for: slot), !peer.dropped, now >= peer.deadline else { continue }
            drop(slot, peer, "no handshake within \(Self.handshakeTimeoutSeconds) s")
        }
    }

    private func accepted(_ completion: Completion, now: UInt64) {
        guard completion.result >= 0 else {
            // Out of descriptors (or memory), a new accept would fail at once, again and again, while
            // peers wait in the backlog: try again a little later, and say so once per reason.
            let errno = Errno(rawValue: -completion.result)
            if loggedAcceptErrors.insert(errno).inserted {
                log("router: accept: \(errno); incoming peers wait until it clears (said once)")
            }
            if !completion.hasMore { acceptRetryAt = now + 250_000_000 }
            return
        }
        if !completion.hasMore { armAccept() }
        let fd = completion.result
        let address = try? Socket.peerAddress(of: fd)
        let peer = Pending(
            fd: fd, address: address, deadline: now + Self.handshakeTimeoutSeconds * 1_000_000_000)
        guard let slot = pending.acquire(peer) else {
            log(
                "peer \(address.map { "\($0)" } ?? "?"): \(Self.maximumHalfOpen) connections already wait for their handshake"
            )
            Glibc.close(fd)
            return
        }
        waiting.append(slot)
        receive(slot, peer)
    }

    private func receive(_ slot: OperationSlot, _ peer: Pending) {
        do {
            try ring.enqueue(.receive(fd: peer.fd, into: peer.buffer), for: slot)
            peer.receiveInFlight = true
        } catch {
            drop(slot, peer, "cannot read its handshake: \(error)")
        }
    }

    /// Advances an encryption exchange with the bytes just read.
    private func continueEncryption(
        _ slot: OperationSlot, _ peer: Pending, with bytes: UnsafeRawBufferPointer
    ) {
        guard var exchange = peer.encryption else { return }
        let step: EncryptionHandshakeResponder.Step
        do {
            step = try exchange.receive(bytes)
        } catch {
            return drop(slot, peer, "encrypted handshake refused: \(error)")
        }
        // At most a key, padding and a 14-byte answer: a fresh socket's buffer takes them at once.
        let reply = exchange.takeOutbound()
        if !reply.isEmpty {
            let sent = reply.withUnsafeBytes {
                send(peer.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            guard sent == reply.count else {
                return drop(slot, peer, "could not answer its encryption exchange")
            }
        }
        switch step {
        case .needMoreBytes:
            peer.encryption = exchange
            receive(slot, peer)
        case .established(let infoHash, let plaintext):
            log(
                "peer \(peer.address.map { "\($0)" } ?? "?"): encrypted handshake (MSE/PE) done, plaintext selected"
            )
            deliver(slot, peer, infoHash: infoHash, plaintext: plaintext)
        }
    }

    /// Hands the socket to its torrent (with what was read of its stream), or closes it.
    private func deliver(_ slot: OperationSlot, _ peer: Pending, infoHash: InfoHash, plaintext: [UInt8]) {
        guard let inbox = directory.inbox(for: infoHash) else {
            return drop(slot, peer, "asks for a torrent we do not serve (\(infoHash))")
        }
        if let refusal = inbox.deliver(RoutedConnection(fd: peer.fd, plaintextRead: plaintext)) {
            return drop(slot, peer, refusal)
        }
        forget(slot, peer, closing: false)
    }

    /// Closes the peer's socket; its buffer goes once no receive is in flight.
    private func drop(_ slot: OperationSlot, _ peer: Pending, _ reason: String) {
        log("peer \(peer.address.map { "\($0)" } ?? "?"): \(reason)")
        peer.dropped = true
        if peer.receiveInFlight {
            // Completes the receive; its completion then forgets the peer.
            Glibc.shutdown(peer.fd, Int32(SHUT_RDWR))
        } else {
            forget(slot, peer)
        }
    }

    private func forget(_ slot: OperationSlot, _ peer: Pending, closing: Bool = true) {
        if closing { Glibc.close(peer.fd) }
        pending.release(slot)
        waiting.removeAll { $0 == slot }
    }

    private static func randomBytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255) }
    }
}
