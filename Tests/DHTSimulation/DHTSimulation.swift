import DHT
import TorrentModel

/// Many ``DHTNode``s exchanging datagrams in memory on virtual time, with loss and latency drawn from a
/// seeded generator, so that a run replays exactly from its seed. Every message is encoded and decoded
/// as on the wire. Some nodes may misbehave (see ``Behaviour``).
public struct DHTSimulation {
    struct InFlight {
        var deliverAt: Instant
        var sequence: Int
        var datagram: DHTDatagram
        var source: DHTEndpoint
    }

    public var nodes: [DHTNode] = []
    public var endpoints: [DHTEndpoint] = []
    public var indexByEndpoint: [DHTEndpoint: Int] = [:]
    /// Events each node emitted, with the instant.
    public var events: [[(at: Instant, event: DHTEvent)]] = []
    public var random: SeededRandom
    public var now = Instant.zero
    public let lossPercent: UInt64
    public let latencyMilliseconds: ClosedRange<UInt64>
    public let tickNanoseconds: UInt64
    /// False for nodes that left the network: they are neither ticked nor reached.
    public private(set) var isAlive: [Bool] = []
    public private(set) var behaviours: [Behaviour] = []
    private var nextTickAt = Instant.zero
    /// A binary min-heap on (delivery time, send order).
    private var inFlight: [InFlight] = []
    private var sequence = 0
    public private(set) var datagramsSent = 0
    public private(set) var datagramsLost = 0

    public init(
        seed: UInt64, lossPercent: UInt64, latencyMilliseconds: ClosedRange<UInt64> = 10...150,
        tickNanoseconds: UInt64 = 200_000_000
    ) {
        random = SeededRandom(seed: seed)
        self.tickNanoseconds = tickNanoseconds
        self.lossPercent = lossPercent
        self.latencyMilliseconds = latencyMilliseconds
    }

    /// Adds a node on a public address of its own /24 with a BEP 42 id for it, or with a random id that
    /// it must replace once it learns its address.
    @discardableResult
    public mutating func addNode(
        configuration: DHTConfiguration = DHTConfiguration(), conformingID: Bool = true,
        behaviour: Behaviour = .honest
    )
        -> Int
    {
        let index = nodes.count
        let address = DHTIPAddress.v4(0x2a00_0001 | UInt32(index) << 8)
        let endpoint = DHTEndpoint(address: address, port: 6881)
        let id = conformingID ? NodeIDSecurity.nodeID(for: address, using: &random) : .random(using: &random)
        nodes.append(
            DHTNode(id: id, configuration: configuration, random: SeededRandom(seed: random.next()), now: now)
        )
        endpoints.append(endpoint)
        indexByEndpoint[endpoint] = index
        events.append([])
        isAlive.append(true)
        behaviours.append(behaviour)
        return index
    }

    /// Node `index` leaves: what is sent to it is lost from now on.
    public mutating func removeNode(_ index: Int) {
        isAlive[index] = false
        indexByEndpoint[endpoints[index]] = nil
    }

    /// Runs `body` against node `index` and delivers what it produced.
    public mutating func with<R>(_ index: Int, _ body: (inout DHTNode, Instant, inout DHTOutput) -> R) -> R {
        var output = DHTOutput()
        let result = body(&nodes[index], now, &output)
        dispatch(output, from: index)
        return result
    }

    /// Delivers datagrams and ticks every node until `deadline` or until `stop` holds.
    public mutating func run(until deadline: Instant, stop: (DHTSimulation) -> Bool = { _ in false }) {
        while now < deadline && !stop(self) {
            if let next = inFlight.first, next.deliverAt <= nextTickAt {
                popEarliest()
                now = max(now, next.deliverAt)
                guard let target = indexByEndpoint[next.datagram.destination] else { continue }
                var output = DHTOutput()
                nodes[target].received(next.datagram.bytes, from: next.source, now: now, into: &output)
                if behaviours[target] != .honest {
                    misbehave(target, answering: next.datagram.bytes, from: next.source, output: &output)
                }
                dispatch(output, from: target)
            } else {
                now = max(now, nextTickAt)
                nextTickAt = nextTickAt.advanced(byNanoseconds: tickNanoseconds)
                for index in nodes.indices where isAlive[index] {
                    var output = DHTOutput()
                    nodes[index].tick(now: now, into: &output)
                    dispatch(output, from: index)
                }
            }
        }
    }

    private mutating func dispatch(_ output: DHTOutput, from index: Int) {
        for event in output.events { events[index].append((now, event)) }
        for datagram in output.datagrams {
            datagramsSent += 1
            if random.next(upperBound: 100) < lossPercent {
                datagramsLost += 1
                continue
            }
            let span = latencyMilliseconds.upperBound - latencyMilliseconds.lowerBound + 1
            let latency = (latencyMilliseconds.lowerBound + random.next(upperBound: span)) * 1_000_000
            let entry = InFlight(
                deliverAt: now.advanced(byNanoseconds: latency), sequence: sequence, datagram: datagram,
                source: endpoints[index])
            sequence += 1
            push(entry)
        }
    }

    /// Compares two queue entries in place: copying them would retain their bytes (a tenth of a run).
    private func precedes(_ a: Int, _ b: Int) -> Bool {
        (inFlight[a].deliverAt, inFlight[a].sequence) < (inFlight[b].deliverAt, inFlight[b].sequence)
    }

    private mutating func push(_ entry: InFlight) {
        inFlight.append(entry)
        var child = inFlight.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(child, parent) else { break }
            inFlight.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popEarliest() {
        inFlight.swapAt(0, inFlight.count - 1)
        inFlight.removeLast()
        var parent = 0
        while true {
            var smallest = parent
            for child in (2 * parent + 1)...(2 * parent + 2)
            where child < inFlight.count && precedes(child, smallest) {
                smallest = child
            }
            guard smallest != parent else { return }
            inFlight.swapAt(parent, smallest)
            parent = smallest
        }
    }

    /// The instant node `index` reported `lookup` finished, and its result.
    public func finished(_ lookup: LookupID, at index: Int) -> (at: Instant, result: LookupResult)? {
        for (at, event) in events[index] {
            if case .lookupFinished(lookup, let result) = event { return (at, result) }
        }
        return nil
    }

    /// Every peer node `index` was told of in `lookup`'s events.
    public func peers(found lookup: LookupID, at index: Int) -> [DHTEndpoint] {
        events[index].flatMap { entry -> [DHTEndpoint] in
            if case .peersFound(lookup, _, let peers) = entry.event { return peers }
            return []
        }
    }
}

extension NodeID {
    /// An id of 20 random bytes.
    public static func random(using random: inout SeededRandom) -> NodeID {
        NodeID((0..<20).map { _ in UInt8(truncatingIfNeeded: random.next()) })!
    }
}
