import TorrentModel

/// A datagram for the engine to send from the DHT socket.
public struct DHTDatagram: Hashable, Sendable {
    public var bytes: [UInt8]
    public var destination: DHTEndpoint

    public init(bytes: [UInt8], destination: DHTEndpoint) {
        self.bytes = bytes
        self.destination = destination
    }
}

/// Something the caller asked for has progressed.
public enum DHTEvent: Hashable, Sendable {
    /// A `get_peers` lookup found peers (each reported once per lookup), as the answers arrive.
    case peersFound(LookupID, infoHash: InfoHash, peers: [DHTEndpoint])
    /// A lookup the caller started has ended (announces, if any, are sent).
    case lookupFinished(LookupID, LookupResult)
    /// Answering nodes agree our external address is `externalAddress` and our id did not satisfy BEP 42
    /// for it: the node now uses `to` (the routing table keeps its nodes). Save the state to keep it.
    case nodeIDChanged(from: NodeID, to: NodeID, externalAddress: DHTIPAddress)
    /// An answer carried nodes of the other family, asked for while ``DHTNode/wantsOtherFamilyNodes``:
    /// give them to that family's node (``DHTNode/learnNodes(_:)``).
    case otherFamilyNodes([DHTNodeInfo])
}

/// What one call into a ``DHTNode`` produced. Reuse one value across calls (``removeAll()`` after
/// handling it) so that its arrays keep their capacity.
public struct DHTOutput: Sendable {
    public var datagrams: [DHTDatagram] = []
    public var events: [DHTEvent] = []

    public init() {}

    public mutating func removeAll() {
        datagrams.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
    }
}
