import URing

/// Datagrams waiting for the ring and those on it, for an unconnected UDP socket (the DHT's, the
/// trackers'): at most `maximumInFlight` on the ring, up to `maximumQueued` waiting (more are dropped),
/// their buffers kept for reuse. `Tag` is what the owner wants back when a send completes.
///
/// Invariants: a datagram with an operation in flight stays in `inFlight` until its completion; a
/// datagram the ring had no room for waits at the head of the queue.
struct DatagramSendQueue<Tag> {
    let maximumInFlight: Int
    let maximumQueued: Int
    let datagramCapacity: Int
    private var inFlight: [(datagram: Datagram, destination: SocketAddress, tag: Tag)?] = []
    private var spare: [Datagram] = []
    private var queued: [(bytes: [UInt8], destination: SocketAddress, tag: Tag)] = []
    private var queuedHead = 0

    init(maximumInFlight: Int = 64, maximumQueued: Int = 4096, datagramCapacity: Int) {
        self.maximumInFlight = maximumInFlight
        self.maximumQueued = maximumQueued
        self.datagramCapacity = datagramCapacity
    }

    /// Sends on the ring not yet completed.
    var inFlightCount: Int { inFlight.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// Queues a datagram; false when the queue is full and it is dropped.
    mutating func append(_ bytes: [UInt8], to destination: SocketAddress, tag: Tag) -> Bool {
        guard queued.count - queuedHead < maximumQueued else { return false }
        queued.append((bytes, destination, tag))
        return true
    }

    /// Puts waiting datagrams on the ring while it has room and slots are free; `fd` names the socket
    /// for a destination (nil: dropped), `slot` the operation slot of an in-flight index.
    mutating func send(on ring: Ring, fd: (SocketAddress) -> Int32?, slot: (Int) -> OperationSlot) {
        // While sends stay backed up the queue never drains: what was sent goes now and then.
        defer {
            if queuedHead >= 256 && queuedHead * 2 >= queued.count {
                queued.removeFirst(queuedHead)
                queuedHead = 0
            }
        }
        while queuedHead < queued.count {
            guard let index = freeIndex() else { return }
            let (bytes, destination, tag) = queued[queuedHead]
            queuedHead += 1
            guard let socket = fd(destination) else { continue }
            let datagram = spare.popLast() ?? Datagram(capacity: datagramCapacity)
            guard datagram.set(bytes, to: destination) else {
                spare.append(datagram)
                continue
            }
            do {
                try ring.enqueue(.sendDatagram(fd: socket, datagram), for: slot(index))
                inFlight[index] = (datagram, destination, tag)
            } catch {
                // The ring is full: this one and the rest go at the next call.
                spare.append(datagram)
                queuedHead -= 1
                return
            }
        }
        queued.removeAll(keepingCapacity: true)
        queuedHead = 0
    }

    /// The send at `index` completed: its destination, tag and bytes (the buffer is kept for reuse, so
    /// the bytes are read before the next `send`).
    mutating func completed(_ index: Int) -> (destination: SocketAddress, tag: Tag, datagram: Datagram)? {
        guard index >= 0, index < inFlight.count, let entry = inFlight[index] else { return nil }
        inFlight[index] = nil
        spare.append(entry.datagram)
        return (entry.destination, entry.tag, entry.datagram)
    }

    /// Drops what waits (what is on the ring completes as usual).
    mutating func removeQueued() {
        queued.removeAll()
        queuedHead = 0
    }

    /// The buffers of sends still on the ring, which must outlive them.
    var buffersInFlight: [Datagram] { inFlight.compactMap { $0?.datagram } }

    private mutating func freeIndex() -> Int? {
        if let index = inFlight.firstIndex(where: { $0 == nil }) { return index }
        guard inFlight.count < maximumInFlight else { return nil }
        inFlight.append(nil)
        return inFlight.count - 1
    }
}
