import TorrentModel

@testable import DHT

/// Many ``DHTNode``s exchanging datagrams in memory on virtual time, with loss and latency drawn from a
/// seeded generator, so that a run replays exactly from its seed.
struct DHTSimulation {
    struct InFlight {
        var deliverAt: Instant
        var sequence: Int
        var datagram: DHTDatagram
        var source: DHTEndpoint
    }

    var nodes: [DHTNode] = []
    var endpoints: [DHTEndpoint] = []
    var indexByEndpoint: [DHTEndpoint: Int] = [:]
    /// Events each node emitted, with the instant.
    var events: [[(at: Instant, event: DHTEvent)]] = []
    var random: SeededRandom
    var now = Instant.zero
    let lossPercent: UInt64
    let latencyMilliseconds: ClosedRange<UInt64>
    let tickNanoseconds: UInt64
    /// False for nodes that left the network: they are neither ticked nor reached.
    private(set) var isAlive: [Bool] = []
    private var nextTickAt = Instant.zero
    /// Sorted by delivery time, then send order.
    private var inFlight: [InFlight] = []
    private var sequence = 0
    private(set) var datagramsSent = 0
    private(set) var datagramsLost = 0

    init(
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
    mutating func addNode(
        configuration: DHTConfiguration = DHTConfiguration(), conformingID: Bool = true
    )
        -> Int
    {
        let index = nodes.count
        let address = DHTIPAddress.v4(0x2a00_0001 | UInt32(index) << 8)
        let endpoint = DHTEndpoint(address: address, port: 6881)
        let id = conformingID ? NodeIDSecurity.nodeID(for: address, using: &random) : randomID(&random)
        nodes.append(
            DHTNode(id: id, configuration: configuration, random: SeededRandom(seed: random.next()), now: now)
        )
        endpoints.append(endpoint)
        indexByEndpoint[endpoint] = index
        events.append([])
        isAlive.append(true)
        return index
    }

    /// Node `index` leaves: what is sent to it is lost from now on.
    mutating func removeNode(_ index: Int) {
        isAlive[index] = false
        indexByEndpoint[endpoints[index]] = nil
    }

    /// Runs `body` against node `index` and delivers what it produced.
    mutating func with<R>(_ index: Int, _ body: (inout DHTNode, Instant, inout DHTOutput) -> R) -> R {
        var output = DHTOutput()
        let result = body(&nodes[index], now, &output)
        dispatch(output, from: index)
        return result
    }

    /// Delivers datagrams and ticks every node until `deadline` or until `stop` holds.
    mutating func run(until deadline: Instant, stop: (DHTSimulation) -> Bool = { _ in false }) {
        while now < deadline && !stop(self) {
            if let next = inFlight.first, next.deliverAt <= nextTickAt {
                inFlight.removeFirst()
                now = max(now, next.deliverAt)
                guard let target = indexByEndpoint[next.datagram.destination] else { continue }
                var output = DHTOutput()
                nodes[target].received(next.datagram.bytes, from: next.source, now: now, into: &output)
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
            let position = insertionIndex(for: entry)
            inFlight.insert(entry, at: position)
        }
    }

    /// Binary search for the first entry delivered after `entry`.
    private func insertionIndex(for entry: InFlight) -> Int {
        var low = 0
        var high = inFlight.count
        while low < high {
            let middle = (low + high) / 2
            let other = inFlight[middle]
            if (other.deliverAt, other.sequence) < (entry.deliverAt, entry.sequence) {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low
    }

    /// The instant node `index` reported `lookup` finished, and its result.
    func finished(_ lookup: LookupID, at index: Int) -> (at: Instant, result: LookupResult)? {
        for (at, event) in events[index] {
            if case .lookupFinished(lookup, let result) = event { return (at, result) }
        }
        return nil
    }

    /// Every peer node `index` was told of in `lookup`'s events.
    func peers(found lookup: LookupID, at index: Int) -> [DHTEndpoint] {
        events[index].flatMap { entry -> [DHTEndpoint] in
            if case .peersFound(lookup, _, let peers) = entry.event { return peers }
            return []
        }
    }
}
