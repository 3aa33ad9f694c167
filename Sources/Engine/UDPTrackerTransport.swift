import Glibc
import TorrentModel
import Tracker
import URing

/// What the shared UDP tracker socket hands datagrams and errors to: one client's exchanges with one
/// tracker address (see `TrackerClient`).
protocol UDPTrackerReceiver: AnyObject {
    /// A datagram from the tracker carrying the transaction id the receiver was routed by.
    func udpDatagram(_ datagram: UnsafeRawBufferPointer, now: UInt64)
    /// The tracker's address refused (ICMP), or sending to it failed.
    func udpFailed(_ errno: Errno, call: String, now: UInt64)
}

/// BEP 15 for every torrent on a reactor over one unconnected UDP socket per address family, where
/// each torrent used to open a connected socket (and keep a 64 KiB buffer) per tracker: 10,000 torrents
/// on one tracker were 10,000 descriptors.
///
/// Answers are routed by the tracker's address and the transaction id in them; a client routes each id
/// it sends and may not take one another client waits for (it draws a new one). A tracker grants its
/// connection id to our address, which every torrent here shares, so the grant is kept for all of them:
/// after the first, announces skip the connect round trip. An unconnected socket hears no ICMP errors
/// on its receives; with IP_RECVERR the kernel queues them with the destination that refused, a poll
/// for POLLERR says when, and the exchanges waiting on that address fail at once instead of
/// retransmitting for an hour. (A receive in flight is not woken by the error: io_uring retries it
/// only for readable data.)
///
/// Invariants: a datagram buffer with an operation in flight stays in `receiving` or `sends` until its
/// completion; a socket is closed only once none of its operations is in flight (or, when
/// the transport is dropped with some in flight, its buffers are never freed).
final class UDPTrackerTransport {
    /// The owner byte in completion tokens (peers 1, storage 2, recheck 3, listener 4, tracker HTTP 5,
    /// DHT 6).
    static let owner: UInt8 = 7
    static let receivesPerSocket = 4
    /// Announce answers carry at most a few hundred peers; a longer datagram is not one we asked for.
    static let datagramCapacity = 16 * 1024
    /// Log lines about datagrams no exchange waits for.
    static let maxStrayDatagramsLogged = 10

    private struct RouteKey: Hashable {
        let address: SocketAddress
        let transactionID: UInt32
    }

    private struct Route {
        weak var receiver: (any UDPTrackerReceiver)?
    }

    /// One family's socket and its receive buffers.
    private final class FamilySocket {
        let family: Int32
        let fd: Int32
        /// The first operation slot index of its receives.
        let firstSlot: Int
        var receiving: [Datagram] = []
        var receivesInFlight = 0
        var errorPollInFlight = false
        var shutDown = false

        init(family: Int32, fd: Int32, firstSlot: Int) {
            self.family = family
            self.fd = fd
            self.firstSlot = firstSlot
        }
    }

    private let ring: Ring
    private let tenant: UInt16
    private let log: (String) -> Void
    /// By family: AF_INET's receives use slots 0..<4, AF_INET6's 4..<8.
    private var sockets: [Int32: FamilySocket] = [:]
    private var routes: [RouteKey: Route] = [:]
    private var connectionGrants: [SocketAddress: (id: UInt64, receivedAt: Instant)] = [:]
    /// Tagged with whether the datagram is being sent a second time (see `sendFailed`).
    private var sends = DatagramSendQueue<Bool>(datagramCapacity: UDPTrackerTransport.datagramCapacity)
    private var strayCount = 0
    private var droppedSends = 0
    private var loggedErrors: Set<Errno> = []
    private var closing = false

    init(ring: Ring, tenant: UInt16 = 0, log: @escaping (String) -> Void) {
        self.ring = ring
        self.tenant = tenant
        self.log = log
    }

    deinit {
        for socket in sockets.values {
            if socket.receivesInFlight > 0 {
                // The kernel may yet write into them: they are never freed.
                for datagram in socket.receiving { _ = Unmanaged.passRetained(datagram) }
            }
            Glibc.close(socket.fd)
        }
        for datagram in sends.buffersInFlight { _ = Unmanaged.passRetained(datagram) }
    }

    /// Sockets open now (for tests and reports).
    var socketCount: Int { sockets.count }

    /// Operations on the ring not yet completed.
    var operationsInFlight: Int {
        sockets.values.reduce(0) { $0 + $1.receivesInFlight + ($1.errorPollInFlight ? 1 : 0) }
            + sends.inFlightCount
    }

    // MARK: Routes

    /// Hands the answers of the tracker at `address` that carry `transactionID` to `receiver`; false when
    /// another receiver waits for that id from that address.
    func route(_ receiver: any UDPTrackerReceiver, from address: SocketAddress, transactionID: UInt32) -> Bool
    {
        let key = RouteKey(address: address, transactionID: transactionID)
        if let holder = routes[key]?.receiver, holder !== receiver { return false }
        routes[key] = Route(receiver: receiver)
        return true
    }

    func unroute(from address: SocketAddress, transactionID: UInt32) {
        routes[RouteKey(address: address, transactionID: transactionID)] = nil
    }

    /// The newest connection id the tracker at `address` granted us.
    func connectionGrant(for address: SocketAddress) -> (id: UInt64, receivedAt: Instant)? {
        connectionGrants[address]
    }

    func recordGrant(_ grant: (id: UInt64, receivedAt: Instant), for address: SocketAddress) {
        if let known = connectionGrants[address], known.receivedAt >= grant.receivedAt { return }
        // A reactor's transport lives as long as the daemon and hears from every tracker its torrents
        // name: grants older than BEP 15's minute of use go once there are many.
        if connectionGrants.count >= 256 {
            connectionGrants = connectionGrants.filter {
                grant.receivedAt < $0.value.receivedAt.adding(seconds: 60)
            }
        }
        connectionGrants[address] = grant
    }

    // MARK: Sending

    /// Sends `bytes` to `destination` (queued while the ring is busy); throws when no socket of that
    /// family can be opened.
    func send(_ bytes: [UInt8], to destination: SocketAddress) throws(TrackerFailure) {
        guard !closing else { throw .abandoned }
        _ = try socket(for: destination.family)
        guard sends.append(bytes, to: destination, tag: false) else {
            droppedSends += 1
            // BEP 15's retransmission sends it again later.
            if droppedSends == 1 { log("udp trackers: the send queue is full; datagrams are dropped") }
            return
        }
        sendQueued()
    }

    private func socket(for family: Int32) throws(TrackerFailure) -> FamilySocket {
        if let open = sockets[family] { return open }
        let any: SocketAddress =
            family == AF_INET6
            ? .ipv6(address: Array(repeating: 0, count: 16), port: 0) : .ipv4(address: 0, port: 0)
        let fd: Int32
        do {
            fd = try Socket.bindUDP(on: any)
        } catch {
            throw .system(call: error.call, errno: error.errno)
        }
        do {
            try Socket.queueErrors(fd, family: family)
        } catch {
            Glibc.close(fd)
            throw .system(call: error.call, errno: error.errno)
        }
        let socket = FamilySocket(
            family: family, fd: fd, firstSlot: family == AF_INET6 ? Self.receivesPerSocket : 0)
        sockets[family] = socket
        for index in 0..<Self.receivesPerSocket {
            socket.receiving.append(Datagram(capacity: Self.datagramCapacity))
            armReceive(socket, index)
        }
        armErrorPoll(socket)
        return socket
    }

    private func sendQueued() {
        sends.send(on: ring, fd: { sockets[$0.family]?.fd }, slot: { slot(UInt32($0)) })
    }

    private func slot(_ index: UInt32) -> OperationSlot {
        OperationSlot(owner: Self.owner, tenant: tenant, index: index, generation: 1)
    }

    // MARK: Receiving

    private func armReceive(_ socket: FamilySocket, _ index: Int) {
        guard !socket.shutDown else { return }
        do {
            try ring.enqueue(
                .receiveDatagram(fd: socket.fd, socket.receiving[index]),
                // Told from sends by the operation kind in the token.
                for: slot(UInt32(socket.firstSlot + index)))
            socket.receivesInFlight += 1
        } catch {
            log("udp trackers: cannot arm a receive: \(error)")
        }
    }

    /// The error polls' slot indexes: after both families' receives.
    private static func errorPollSlot(family: Int32) -> Int {
        2 * receivesPerSocket + (family == AF_INET6 ? 1 : 0)
    }

    private func armErrorPoll(_ socket: FamilySocket) {
        guard !socket.shutDown, !socket.errorPollInFlight else { return }
        do {
            try ring.enqueue(
                .pollAdd(fd: socket.fd, events: UInt32(POLLERR), multishot: false),
                for: slot(UInt32(Self.errorPollSlot(family: socket.family))))
            socket.errorPollInFlight = true
        } catch {
            log("udp trackers: cannot watch for refusals: \(error)")
        }
    }

    /// A completion whose token carries ``owner``.
    func handle(_ completion: Completion, now: UInt64) {
        let index = Int(completion.slot.index)
        switch completion.token.kind {
        case .pollAdd:
            let family = index == Self.errorPollSlot(family: AF_INET6) ? AF_INET6 : AF_INET
            guard let socket = sockets[family] else { return }
            socket.errorPollInFlight = false
            guard !socket.shutDown else { return }
            // Taking the queued errors clears the socket's error, so the next poll waits again.
            takeQueuedErrors(socket, now: now)
            armErrorPoll(socket)
        case .receiveMessage:
            let family = index < Self.receivesPerSocket ? AF_INET : AF_INET6
            guard let socket = sockets[family] else { return }
            socket.receivesInFlight -= 1
            let receiveIndex = index - socket.firstSlot
            guard !socket.shutDown, receiveIndex >= 0, receiveIndex < socket.receiving.count else { return }
            if completion.result >= 0 {
                let datagram = socket.receiving[receiveIndex]
                datagram.received(completion.result)
                if let source = datagram.peer { deliver(datagram, from: source, now: now) }
                armReceive(socket, receiveIndex)
            } else if receiveFailed(socket, errno: Errno(rawValue: -completion.result), now: now) {
                armReceive(socket, receiveIndex)
            }
        case .sendMessage:
            guard let sent = sends.completed(index) else { return }
            if completion.result < 0 {
                sendFailed(sent, errno: Errno(rawValue: -completion.result), now: now)
            }
            sendQueued()
        default:
            break
        }
    }

    private func deliver(_ datagram: Datagram, from source: SocketAddress, now: UInt64) {
        let bytes = datagram.bytes
        // Every BEP 15 answer starts with its action and transaction id.
        guard !datagram.wasTruncated, bytes.count >= 8 else {
            stray(
                from: source, reason: datagram.wasTruncated ? "longer than \(bytes.count) bytes" : "too short"
            )
            return
        }
        let transactionID = bytes[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let key = RouteKey(address: source, transactionID: transactionID)
        guard let receiver = routes[key]?.receiver else {
            routes[key] = nil
            stray(from: source, reason: "transaction id \(transactionID) is not awaited")
            return
        }
        receiver.udpDatagram(bytes, now: now)
    }

    /// A tracker (or anyone) spraying datagrams gets a few lines in the log, not one per datagram.
    private func stray(from source: SocketAddress, reason: String) {
        strayCount += 1
        guard strayCount <= Self.maxStrayDatagramsLogged else { return }
        log("tracker udp://\(source): ignored a datagram: \(reason)")
    }

    /// A receive failed: ICMP errors queued for destinations fail the exchanges waiting on them. Whether
    /// to receive again.
    private func receiveFailed(_ socket: FamilySocket, errno: Errno, now: UInt64) -> Bool {
        if takeQueuedErrors(socket, now: now) > 0 { return true }
        if loggedErrors.insert(errno).inserted { log("udp trackers: receive: \(errno) (said once)") }
        // A socket that cannot receive would fail again at once, for ever: that receive is not armed
        // again. Anything else (an ICMP error already taken, a signal) passes.
        return !Self.brokenSocketErrors.contains(errno)
    }

    private static let brokenSocketErrors: Set<Errno> = [
        .badFileDescriptor, .invalidArgument, .canceled, Errno(rawValue: ENOTSOCK), Errno(rawValue: EFAULT),
    ]

    /// A send failed. An ICMP error from any tracker is reported by the next send from the socket,
    /// whatever its destination (the queued errors say whom it concerns): such a send goes again, once.
    private func sendFailed(
        _ sent: (destination: SocketAddress, tag: Bool, datagram: Datagram), errno: Errno, now: UInt64
    ) {
        if let socket = sockets[sent.destination.family] { takeQueuedErrors(socket, now: now) }
        if Self.icmpErrors.contains(errno), !sent.tag, !closing,
            sends.append(Array(sent.datagram.bytes), to: sent.destination, tag: true)
        {
            return
        }
        fail(sent.destination, errno: errno, call: "send to", now: now)
    }

    /// What ICMP errors become (a UDP send on its own never fails with these).
    private static let icmpErrors: Set<Errno> = [
        .connectionRefused, Errno(rawValue: EHOSTUNREACH), Errno(rawValue: ENETUNREACH),
        Errno(rawValue: EHOSTDOWN), Errno(rawValue: EPROTO),
    ]

    /// Fails the exchanges waiting on each destination an ICMP error names; how many errors there were.
    @discardableResult
    private func takeQueuedErrors(_ socket: FamilySocket, now: UInt64) -> Int {
        var count = 0
        while count < 1024, let (destination, reason) = try? Socket.takeQueuedError(socket.fd) {
            count += 1
            fail(destination, errno: reason, call: "recv from", now: now)
        }
        return count
    }

    /// Every exchange waiting on `destination` fails with `errno`.
    private func fail(_ destination: SocketAddress, errno: Errno, call: String, now: UInt64) {
        let waiting = routes.filter { $0.key.address == destination }
        for (key, route) in waiting {
            routes[key] = nil
            route.receiver?.udpFailed(errno, call: call, now: now)
        }
    }

    // MARK: Closing

    /// Stops receiving; call ``closeSockets()`` once ``operationsInFlight`` is 0.
    func shutDown() {
        closing = true
        sends.removeQueued()
        routes.removeAll()
        for socket in sockets.values where !socket.shutDown {
            socket.shutDown = true
            Glibc.shutdown(socket.fd, Int32(SHUT_RDWR))
        }
    }

    func closeSockets() {
        guard operationsInFlight == 0 else { return }
        for socket in sockets.values { Glibc.close(socket.fd) }
        sockets.removeAll()
    }
}
