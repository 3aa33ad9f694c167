import PeerWire
import TorrentModel
import URing

/// What one connection knows for BEP 11 peer exchange.
struct PeerExchangeLink {
    /// The number the peer wants on our `ut_pex` messages (nil: it does not take them).
    var peerExtensionID: UInt8?
    /// The port an incoming peer listens on (`p` of its extension handshake); without it, others could
    /// not reach the peer, so it is not passed on.
    var listenPort: UInt16?
    /// The `e` of its extension handshake, passed on in the flags.
    var prefersEncryption = false
    /// What the peer was told and when, and how often it may tell us; made at its extension handshake
    /// (or its first message).
    var state: PexState?
}

// MARK: Peer exchange (BEP 11)

extension DownloadSession {
    /// The number peers put on the `ut_pex` messages they send us.
    static let peerExchangeExtensionID: UInt8 = 3
    /// How often the links are looked at for a message due; `PexState` paces each link to a minute.
    static let peerExchangeCheckNanoseconds: UInt64 = 1_000_000_000

    /// BEP 27: a private torrent's peers come only from its trackers, so it neither offers nor takes PEX;
    /// nor does one whose user turned it off (`--no-pex`, the daemon's `pex-enabled`).
    var offersPeerExchange: Bool { options.usePeerExchange && !metainfo.isPrivate }

    /// The peer's extension handshake: whether it takes `ut_pex`, and how others can reach it.
    func peerExchangeKnown(_ handshake: ExtensionHandshake, link: PeerLink) {
        guard offersPeerExchange else { return }
        let id = handshake.extensions["ut_pex"] ?? 0
        link.exchange.peerExtensionID = id == 0 ? nil : id
        link.exchange.listenPort = handshake.listenPort
        link.exchange.prefersEncryption = handshake.prefersEncryption
        if link.exchange.state == nil { link.exchange.state = makePexState(for: link) }
    }

    func makePexState(for link: PeerLink) -> PexState {
        var ownHosts: Set<PeerAddress.Host> = []
        if let host = boundAddress.flatMap(PeerAddress.init)?.host, !host.isUnroutable {
            ownHosts.insert(host)
        }
        return PexState(recipient: reachableAddress(of: link), ownHosts: ownHosts)
    }

    /// Where other peers can connect to `link`'s peer: the address we dialled, or an incoming peer's host
    /// at the port it listens on; nil when unknown.
    func reachableAddress(of link: PeerLink) -> PeerAddress? {
        guard let address = PeerAddress(link.address) else { return nil }
        if link.connection.initiatedLocally { return address }
        return link.exchange.listenPort.map { PeerAddress(host: address.host, port: $0) }
    }

    /// The peers we trade with, as we tell others about them.
    func exchangeablePeers() -> [PeerAddress: PexFlags] {
        var peers: [PeerAddress: PexFlags] = [:]
        for case let link? in links where link.connection.isEstablished && !link.closing {
            guard let address = reachableAddress(of: link) else { continue }
            var flags: PexFlags = []
            if link.connection.initiatedLocally { flags.insert(.reachable) }
            if link.connection.peerPieces.isComplete { flags.insert(.seed) }
            if link.exchange.prefersEncryption { flags.insert(.prefersEncryption) }
            peers[address] = flags
        }
        return peers
    }

    /// Sends each peer that takes `ut_pex` what changed since its last message, when `PexState` says one
    /// is due (at most once a minute each).
    func exchangePeers(now: UInt64) {
        guard offersPeerExchange, now >= nextPeerExchangeCheck else { return }
        nextPeerExchangeCheck = now + Self.peerExchangeCheckNanoseconds
        let time = Instant(nanoseconds: now)
        var connected: [PeerAddress: PexFlags]?
        for case let link? in links where link.connection.isEstablished && !link.closing {
            guard let id = link.exchange.peerExtensionID, var state = link.exchange.state else { continue }
            let peers = connected ?? exchangeablePeers()
            connected = peers
            guard let message = state.nextMessage(connectedPeers: peers, now: time) else { continue }
            link.exchange.state = state
            _ = link.connection.sendExtended(id: id, payload: message.encoded().span)
        }
    }

    /// A `ut_pex` message from `link`: its peers become candidates, within the connection budget. One
    /// that does not decode ends the connection; one sooner than `PexState` allows is ignored.
    func peerExchangeMessageReceived(_ payload: [UInt8], link: PeerLink, now: UInt64) {
        guard offersPeerExchange, !stopping else { return }
        let message: PexMessage
        do {
            message = try PexMessage(decoding: payload)
        } catch {
            disconnect(link, reason: "protocol: ut_pex: \(error)", now: now)
            return
        }
        var state = link.exchange.state ?? makePexState(for: link)
        let receipt = state.receive(message, now: Instant(nanoseconds: now))
        link.exchange.state = state
        guard case .accepted(let candidates, _) = receipt else { return }
        // A torrent that has all it wants has no use for seeds, and they none for it.
        let useful = candidates.filter { !(hasEverythingWanted && $0.flags.contains(.seed)) }
        guard !useful.isEmpty else { return }
        log("pex: \(useful.count) peers from \(link.address)")
        addCandidates(useful.map { SocketAddress($0.address) })
        connectToCandidates()
    }
}

extension PeerAddress {
    /// A socket address as the compact formats carry it; an IPv4-mapped IPv6 address (a dual-stack
    /// listener's view of an IPv4 peer) becomes the IPv4 address.
    init?(_ address: SocketAddress) {
        switch address {
        case .ipv4(let host, let port):
            self.init(host: .ipv4(host), port: port)
        case .ipv6(let bytes, let port):
            guard let host = Host(bytes: bytes) else { return nil }
            if case .ipv6(0, let low) = host, low >> 32 == 0xffff {
                self.init(host: .ipv4(UInt32(truncatingIfNeeded: low)), port: port)
            } else {
                self.init(host: host, port: port)
            }
        }
    }
}

extension SocketAddress {
    init(_ address: PeerAddress) {
        switch address.host {
        case .ipv4(let host): self = .ipv4(address: host, port: address.port)
        case .ipv6: self = .ipv6(address: address.host.bytes, port: address.port)
        }
    }
}

extension [UInt8] {
    /// The bytes of a message, kept past the receive buffer they were parsed from.
    init(copying span: Span<UInt8>) {
        self.init()
        reserveCapacity(span.count)
        for index in span.indices { append(span[index]) }
    }
}
