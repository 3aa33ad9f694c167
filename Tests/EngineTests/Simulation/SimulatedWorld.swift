import Foundation
import Glibc
import TorrentModel
import URing

/// The kernel and the network of a deterministic engine simulation: it runs the ring's operations
/// (`RingSimulator`) on simulated time. Connections lead to `SimulatedPeer`s by address, over links
/// with their own rate, latency and loss; file operations are done at once with the real system calls (their
/// results do not depend on timing); timers and cancellations behave as io_uring's do.
///
/// Only what the engine uses for outgoing peer connections and its files is modelled: no listening
/// sockets, datagrams, provided buffers, zero-copy sends, preallocation or moves (the features are not offered, so the engine
/// does without them, as on an older kernel). Everything runs on the reactor's thread, in an order
/// fixed by the event times and, for equal times, by the order the events were scheduled.
final class SimulatedWorld: RingSimulator {
    let features: RingFeatures = [.registeredBuffers]
    private(set) var nanoseconds: UInt64 = 0
    var random: SeededRandom
    /// Whom each address leads to (an address without a peer refuses the connection).
    private var peers: [SocketAddress: SimulatedPeer] = [:]
    private var connections: [Int32: SimulatedConnection] = [:]
    private var ready: [Completion] = []
    private var events = EventQueue()
    /// Operations waiting for something (timers, connects, receives), by token, for cancellation.
    private var pending: [CompletionToken: [PendingOperation]] = [:]
    /// The token of an operation submitted with `.link`, which the next (a link timeout) bounds.
    private var linkedToken: CompletionToken?
    /// One line per notable event (connections, closes), for the determinism check and for failures.
    private(set) var trace: [String] = []

    private enum PendingOperation {
        case timer(event: Int)
        case connect(SimulatedConnection, timeout: CompletionToken?)
        case linkTimeout(event: Int, target: CompletionToken)
        case receive(SimulatedConnection)
    }

    init(seed: UInt64) {
        random = SeededRandom(seed: seed)
    }

    func add(_ peer: SimulatedPeer) {
        peers[peer.address] = peer
        peer.world = self
    }

    /// Runs `action` at `time` (not earlier than now).
    @discardableResult
    func schedule(at time: UInt64, _ action: @escaping () -> Void) -> Int {
        events.push(time: max(time, nanoseconds), action: action)
    }

    func note(_ line: String) {
        trace.append("\(nanoseconds / 1_000_000) ms \(line)")
    }

    // MARK: RingSimulator

    func submit(_ operation: URing.Operation, token: CompletionToken, flags: SubmissionFlags) {
        let linkHead = linkedToken
        linkedToken = flags.contains(.link) ? token : nil
        switch operation {
        case .nop:
            complete(token, 0)
        case .timeout(let duration, _):
            let event = schedule(at: nanoseconds + Self.nanoseconds(duration)) { [self] in
                if removePending(token) { complete(token, -ETIME) }
            }
            addPending(token, .timer(event: event))
        case .linkTimeout(let duration):
            guard let target = linkHead, var operations = pending[target], !operations.isEmpty else {
                // What it bounds is over already.
                complete(token, -ECANCELED)
                return
            }
            let event = schedule(at: nanoseconds + Self.nanoseconds(duration)) { [self] in
                guard removePending(token) else { return }
                complete(token, -ETIME)
                if removePending(target) { complete(target, -ECANCELED) }
            }
            if case .connect(let connection, _) = operations[0] {
                operations[0] = .connect(connection, timeout: token)
                pending[target] = operations
            }
            addPending(token, .linkTimeout(event: event, target: target))
        case .connect(let fd, let address):
            connect(fd: fd, to: address, token: token)
        case .receive(let fd, let buffer):
            guard let connection = connections[fd] else { return complete(token, -ENOTCONN) }
            connection.receive = (token, buffer)
            addPending(token, .receive(connection))
            deliver(connection)
        case .send(let fd, let bytes):
            send(fd: fd, [bytes], token: token)
        case .sendMessage(let fd, let vector):
            send(fd: fd, vector.unsentRanges, token: token)
        case .cancel(let target, let all):
            var cancelled: Int32 = 0
            while let operations = pending[target], !operations.isEmpty {
                cancel(target)
                cancelled += 1
                if !all { break }
            }
            complete(token, cancelled > 0 ? (all ? cancelled : 0) : -ENOENT)
        case .read(let fd, let buffer, let offset), .readFixed(let fd, let buffer, let offset, _):
            complete(token, Self.result(pread(fd, buffer.baseAddress, buffer.count, off_t(offset))))
        case .write(let fd, let bytes, let offset), .writeFixed(let fd, let bytes, let offset, _):
            complete(token, Self.result(pwrite(fd, bytes.baseAddress, bytes.count, off_t(offset))))
        case .fsync(let fd, let dataOnly):
            complete(token, Self.result(dataOnly ? fdatasync(fd) : fsync(fd)))
        case .openat(let directory, let path, let flags, let mode):
            complete(token, Self.result(Glibc.openat(directory, path, flags, mode)))
        case .close(let fd):
            complete(token, Self.result(Glibc.close(fd)))
        case .unlinkat(let directory, let path, let flags):
            complete(token, Self.result(Glibc.unlinkat(directory, path, flags)))
        case .accept, .receiveProvided, .sendDatagram, .receiveDatagram, .sendZeroCopy, .pollAdd, .fallocate,
            .statx, .renameat:
            complete(token, -EOPNOTSUPP)
        }
    }

    func wait(minimumCompletions: Int, timeout: Duration?) {
        let deadline = timeout.map { nanoseconds + Self.nanoseconds($0) }
        while ready.count < max(1, minimumCompletions), let next = events.earliestTime,
            deadline.map({ next <= $0 }) ?? true
        {
            let (time, action) = events.pop()!
            nanoseconds = max(nanoseconds, time)
            action()
        }
        if ready.count < max(1, minimumCompletions), let deadline { nanoseconds = max(nanoseconds, deadline) }
    }

    func takeCompletions(into completions: inout [Completion]) {
        completions.append(contentsOf: ready)
        ready.removeAll(keepingCapacity: true)
    }

    func shutdown(socket fd: Int32) {
        guard let connection = connections[fd], connection.isOpen else { return }
        close(connection, by: "engine")
    }

    // MARK: Connections

    private func connect(fd: Int32, to address: SocketAddress, token: CompletionToken) {
        // A descriptor number the engine closed and got again is a new connection.
        if let old = connections[fd], old.isOpen { close(old, by: "reuse") }
        let peer = peers[address]
        let connection = SimulatedConnection(fd: fd, peer: peer)
        connections[fd] = connection
        addPending(token, .connect(connection, timeout: nil))
        let link = peer?.link ?? SimulatedLink(bytesPerSecond: 1, latencyNanoseconds: 50_000_000)
        schedule(at: nanoseconds + 2 * link.latencyNanoseconds) { [self] in
            guard let operations = pending[token], case .connect(_, let timeout) = operations.first else {
                return
            }
            guard let peer, peer.accepts(connection, at: nanoseconds) else {
                // A refusal, or silence (the link timeout decides) from a peer that is away.
                if peer == nil || peer!.refusesWhenAway {
                    removePending(token)
                    complete(token, -ECONNREFUSED)
                    if let timeout { cancel(timeout) }
                }
                return
            }
            removePending(token)
            connection.isOpen = true
            note("connected \(peer.name)")
            complete(token, 0)
            if let timeout { cancel(timeout) }
            peer.connected(connection)
        }
    }

    private func send(fd: Int32, _ ranges: [UnsafeRawBufferPointer], token: CompletionToken) {
        guard let connection = connections[fd], connection.isOpen, let peer = connection.peer else {
            return complete(token, -EPIPE)
        }
        var bytes: [UInt8] = []
        for range in ranges { bytes.append(contentsOf: range) }
        complete(token, Int32(bytes.count))
        let arrival = peer.link.arrival(
            of: bytes.count, at: nanoseconds, direction: .toPeer, random: &random)
        schedule(at: arrival) {
            guard connection.isOpen else { return }
            peer.received(bytes, on: connection)
        }
    }

    /// The peer sends `bytes` to the engine: they arrive after the link's latency, at its rate.
    func peerSends(_ bytes: [UInt8], on connection: SimulatedConnection) {
        guard connection.isOpen, let peer = connection.peer else { return }
        let arrival = peer.link.arrival(
            of: bytes.count, at: nanoseconds, direction: .fromPeer, random: &random)
        schedule(at: arrival) { [self] in
            guard connection.isOpen else { return }
            connection.inbound.append(contentsOf: bytes)
            deliver(connection)
        }
    }

    /// The peer closes the connection (the engine sees it after the latency).
    func peerCloses(_ connection: SimulatedConnection) {
        guard connection.isOpen, let peer = connection.peer else { return }
        schedule(at: nanoseconds + peer.link.latencyNanoseconds) { [self] in
            guard connection.isOpen else { return }
            close(connection, by: peer.name)
        }
    }

    /// Hands what has arrived to the pending receive, if any.
    private func deliver(_ connection: SimulatedConnection) {
        guard let (token, buffer) = connection.receive else { return }
        let available = connection.inbound.count - connection.inboundHead
        if available > 0 {
            let count = min(available, buffer.count)
            connection.inbound.withUnsafeBytes {
                buffer.copyMemory(
                    from: UnsafeRawBufferPointer(
                        rebasing: $0[connection.inboundHead..<connection.inboundHead + count]))
            }
            connection.inboundHead += count
            if connection.inboundHead == connection.inbound.count {
                connection.inbound.removeAll(keepingCapacity: true)
                connection.inboundHead = 0
            }
            connection.receive = nil
            removePending(token)
            complete(token, Int32(count))
        } else if !connection.isOpen {
            connection.receive = nil
            removePending(token)
            complete(token, 0)
        }
    }

    private func close(_ connection: SimulatedConnection, by whom: String) {
        connection.isOpen = false
        note("closed by \(whom): \(connection.peer?.name ?? "?")")
        connection.peer?.closed(connection)
        deliver(connection)
    }

    // MARK: Completions and cancellation

    private func complete(_ token: CompletionToken, _ result: Int32) {
        ready.append(Completion(token: token, result: result, flags: 0))
    }

    private func addPending(_ token: CompletionToken, _ operation: PendingOperation) {
        pending[token, default: []].append(operation)
    }

    /// Forgets the oldest pending operation of `token`; false if there was none.
    @discardableResult
    private func removePending(_ token: CompletionToken) -> Bool {
        guard var operations = pending[token], !operations.isEmpty else { return false }
        operations.removeFirst()
        pending[token] = operations.isEmpty ? nil : operations
        return true
    }

    /// Ends the oldest pending operation of `token` with ECANCELED (a timer's event is dropped).
    private func cancel(_ token: CompletionToken) {
        guard let operation = pending[token]?.first else { return }
        removePending(token)
        switch operation {
        case .timer(let event), .linkTimeout(let event, _):
            events.remove(event)
        case .connect(_, let timeout):
            if let timeout { cancel(timeout) }
        case .receive(let connection):
            connection.receive = nil
        }
        complete(token, -ECANCELED)
    }

    private static func result(_ value: some BinaryInteger) -> Int32 {
        value < 0 ? -Glibc.errno : Int32(truncatingIfNeeded: value)
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds / 1_000_000_000))
    }
}

/// One TCP connection from the engine to a simulated peer, as the simulation sees it.
final class SimulatedConnection {
    let fd: Int32
    let peer: SimulatedPeer?
    var isOpen = false
    /// Bytes that reached the engine's side and are not yet received.
    var inbound: [UInt8] = []
    var inboundHead = 0
    /// The engine's receive waiting for bytes.
    var receive: (CompletionToken, UnsafeMutableRawBufferPointer)?

    init(fd: Int32, peer: SimulatedPeer?) {
        self.fd = fd
        self.peer = peer
    }
}

/// A path between the engine and one peer: a latency each way, a rate each way that bytes queue
/// behind (what is sent after a large message waits for it to go), and a loss rate. TCP turns a lost
/// segment into a delay: the retransmission after a 200 ms timeout, which everything behind it waits for.
final class SimulatedLink {
    enum Direction { case toPeer, fromPeer }
    let bytesPerSecond: UInt64
    let latencyNanoseconds: UInt64
    /// Of each send, the chance in a thousand that a segment of it is lost.
    let lossPerMille: UInt64
    private var freeAt: [Direction: UInt64] = [:]

    init(bytesPerSecond: UInt64, latencyNanoseconds: UInt64, lossPerMille: UInt64 = 0) {
        self.bytesPerSecond = bytesPerSecond
        self.latencyNanoseconds = latencyNanoseconds
        self.lossPerMille = lossPerMille
    }

    /// When `count` bytes sent at `now` arrive at the other end.
    func arrival(
        of count: Int, at now: UInt64, direction: Direction, random: inout SeededRandom
    ) -> UInt64 {
        let start = max(now, freeAt[direction] ?? 0)
        var done = start + UInt64(count) * 1_000_000_000 / max(1, bytesPerSecond)
        if lossPerMille > 0 && UInt64.random(in: 0..<1000, using: &random) < lossPerMille {
            done += 200_000_000
        }
        freeAt[direction] = done
        return done + latencyNanoseconds
    }
}

/// Events by time, then by the order they were scheduled.
struct EventQueue {
    private var heap: [(time: UInt64, sequence: Int)] = []
    private var actions: [Int: () -> Void] = [:]
    private var nextSequence = 0

    var earliestTime: UInt64? {
        mutating get {
            while let first = heap.first, actions[first.sequence] == nil { popHeap() }
            return heap.first?.time
        }
    }

    mutating func push(time: UInt64, action: @escaping () -> Void) -> Int {
        let sequence = nextSequence
        nextSequence += 1
        actions[sequence] = action
        heap.append((time, sequence))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
        return sequence
    }

    mutating func remove(_ sequence: Int) { actions[sequence] = nil }

    mutating func pop() -> (UInt64, () -> Void)? {
        guard earliestTime != nil, let first = heap.first,
            let action = actions.removeValue(forKey: first.sequence)
        else { return nil }
        popHeap()
        return (first.time, action)
    }

    private mutating func popHeap() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && Self.less(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count && Self.less(heap[right], heap[smallest]) { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }

    private static func less(_ a: (time: UInt64, sequence: Int), _ b: (time: UInt64, sequence: Int)) -> Bool {
        a.time < b.time || (a.time == b.time && a.sequence < b.sequence)
    }
}
