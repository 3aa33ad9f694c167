import Glibc
import Hashing
import Metainfo
import PeerWire
import Swarm
import TorrentModel
import URing

/// What a metadata fetch reports about once a second.
public struct MetadataFetchStatus: Sendable, Equatable {
    /// Peers known (from the link, `--peer`, trackers).
    public var knownPeers: Int
    /// Connections open now, and those that offered the metadata.
    public var connectedPeers: Int
    public var offeringPeers: Int
    public var trackerState: String?
    /// How much of the metadata has arrived, 0 to 1 (Transmission's `metadataPercentComplete`).
    public var fractionReceived: Double = 0
}

/// What a magnet link's metadata stage found: the verified info dictionary and, for a v2-only one, the
/// piece layers of its files longer than a piece (BEP 52), by file root.
struct FetchedMetadata: Sendable {
    var infoDictionary: [UInt8]
    var pieceLayers: [SHA256Digest: [SHA256Digest]] = [:]
}

/// A magnet link's first stage on a reactor: connects to the peers it can find (the link's `x.pe`,
/// `options.peers`, the link's trackers, the DHT, and what connected peers name by `ut_pex` — before
/// the metadata says whether the torrent is private, as libtorrent does too), fetches the info
/// dictionary with `ut_metadata` through the pure ``MetadataFetch``, and leaves with it (the engine
/// then starts the torrent's `DownloadSession` with the peers heard here). Stopped before that, it
/// leaves with nothing.
///
/// Invariants: at most one connect, one receive and one send are in flight per link; a link's receive
/// buffer lives until its last completion; the fetch leaves its reactor only when no link is left and
/// its trackers are closed.
final class MetadataFetchSession: ReactorTenant {
    static let owner: UInt8 = Reactor.peerOwner
    static let receiveBufferBytes = 16 * 1024
    /// Connections at once: metadata is small, and a few peers that answer are plenty.
    static let maximumConnections = 24
    /// What may wait to be sent to one peer: requests, rejects and exchange messages, all small.
    static let maximumQueuedBytes = 1 << 20
    static let tickNanoseconds: UInt64 = 250_000_000

    private final class Link {
        let index: Int
        let generation: UInt16
        let fd: Int32
        let address: SocketAddress
        var connected = false
        var connectInFlight = false
        var receiveInFlight = false
        var sendInFlight = false
        var closing = false
        var outbox: [UInt8] = []
        var sending: [UInt8] = []
        var sendOffset = 0
        let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: MetadataFetchSession.receiveBufferBytes, alignment: 64)

        init(index: Int, generation: UInt16, fd: Int32, address: SocketAddress) {
            self.index = index
            self.generation = generation
            self.fd = fd
            self.address = address
        }

        deinit { receiveBuffer.deallocate() }

        var key: LinkKey { LinkKey(index: index, generation: generation) }
        var hasOperationsInFlight: Bool { connectInFlight || receiveInFlight || sendInFlight }
    }

    struct LinkKey: Hashable, Sendable {
        let index: Int
        let generation: UInt16
    }

    let magnet: MagnetLink
    let infoHash: InfoHash
    var options: DownloadOptions
    var hostKey: HostKey?
    private(set) var tickDeadline: UInt64 = 0
    func isReceivingBlocks(now: UInt64) -> Bool { false }
    private(set) var hasLeftReactor = false
    /// Called on the reactor once, when the fetch has left it: the metadata, or nil if stopped.
    var endHandler: ((Result<FetchedMetadata?, DownloadError>) -> Void)?
    var statusHandler: ((MetadataFetchStatus) -> Void)?
    private let log: (String) -> Void

    private unowned(unsafe) var reactor: Reactor!
    private var tenant: UInt16 = 0
    private var fetch: MetadataFetch<LinkKey>
    private var actions: [MetadataFetch<LinkKey>.Action] = []
    private var links: [Link?] = []
    private var generations: [UInt16] = []
    private var directory = PeerDirectory<SocketAddress>()
    /// Every address heard of, in order: handed to the download that follows.
    private(set) var peersHeard: [SocketAddress] = []
    private var heard: Set<SocketAddress> = []
    private var trackers: TrackerAnnouncer?
    private var ending: Result<FetchedMetadata?, DownloadError>?
    /// A v2-only info dictionary, verified, while its piece layers are fetched.
    private var awaitingLayers: [UInt8]?
    /// Trackers and the DHT are no longer asked for peers (the fetch is ending).
    private var sourcesClosed = false
    private var lastStatus: UInt64 = 0

    /// Nil when the link names no hash peers could know the torrent by.
    init?(magnet: MagnetLink, options: DownloadOptions, log: @escaping (String) -> Void) {
        guard let hashes = InfoDictionaryHashes(v1: magnet.infoHashV1, v2: magnet.infoHashV2),
            let infoHash = magnet.wireInfoHash
        else { return nil }
        self.magnet = magnet
        self.infoHash = infoHash
        self.options = options
        self.log = log
        fetch = MetadataFetch(
            infoHash: infoHash, hashes: hashes, localPeerID: DownloadSession.makePeerID(),
            clientName: "Potluck \(potluckVersion)", peerExchange: options.usePeerExchange)
        var addresses = options.peers
        for peer in magnet.peers {
            if let address = SocketAddress("\(peer)") {
                addresses.append(address)
            } else {
                log("magnet peer \(peer) ignored: only numeric addresses are used")
            }
        }
        hear(addresses)
    }

    private var ring: Ring { reactor.ring }

    func attach(to reactor: Reactor, tenant: UInt16) {
        self.reactor = reactor
        self.tenant = tenant
        let now = reactor.now
        startTrackers(now: now)
        if let dht = options.dht, let hostKey {
            dht.subscribe(infoHash, key: hostKey, reply: reactor.doorbell, announcePort: nil)
        }
        if let localDiscovery = options.localDiscovery, let hostKey {
            localDiscovery.subscribe(infoHash, key: hostKey, reply: reactor.doorbell, announcePort: nil)
        }
        log("fetching metadata for \(infoHash.hex) from \(peersHeard.count) peers known")
        connectToCandidates(now: now)
        scheduleTick(now: now)
        reactor.touch(tenant)
    }

    func stop() {
        if ending == nil { ending = .success(nil) }
        reactor.touch(tenant)
    }

    func hashCompleted(_ result: HashResult, now: UInt64) {
        preconditionFailure("a metadata fetch submits no hash jobs")
    }

    func tick(now: UInt64) {
        if ending == nil {
            trackers?.tick(now: now)
            takeTrackerPeers(now: now)
            fetch.tick(now: Instant(nanoseconds: now), into: &actions)
            perform(now: now)
            connectToCandidates(now: now)
            if now - lastStatus >= 1_000_000_000 {
                lastStatus = now
                statusHandler?(
                    MetadataFetchStatus(
                        knownPeers: peersHeard.count, connectedPeers: fetch.connectedCount,
                        offeringPeers: fetch.offeringCount, trackerState: trackers?.state,
                        fractionReceived: fetch.fractionReceived))
            }
        }
        scheduleTick(now: now)
    }

    private func scheduleTick(now: UInt64) {
        guard !hasLeftReactor else { return }
        tickDeadline = now + Self.tickNanoseconds
        reactor.schedule(tenant, at: tickDeadline)
    }

    /// Announces to the trackers, if there are some and they are wanted. BEP 12 tiers: each `tr` is a
    /// tier of its own, tried in order (unless a front end edited them).
    private func startTrackers(now: UInt64) {
        let tiers = options.trackers ?? magnet.trackers.map { [$0] }
        guard options.useTrackers, !tiers.isEmpty else { return }
        trackers = TrackerAnnouncer(
            ring: ring, tenant: tenant, udp: reactor.udpTrackers,
            scrapes: options.trackerBoard == nil ? nil : reactor.scrapes, trackers: tiers, isPrivate: false,
            infoHash: infoHash, peerID: DownloadSession.makePeerID(),
            port: options.announcedPort ?? 0, seed: options.seed, extraCAFile: options.trackerCAFile,
            board: options.trackerBoard,
            // Nothing is known of the size yet; any amount left says we are a leecher.
            totals: { TrackerAnnouncer.Totals(uploadedBytes: 0, downloadedBytes: 0, leftBytes: 1) },
            log: log)
        trackers?.trackerAnswered = { [unowned self] now in
            takeTrackerPeers(now: now)
            reactor.touch(tenant)
        }
        trackers?.start(now: now, isComplete: false)
        trackers?.tick(now: now)
    }

    /// A front end edited the announce list: the fetch announces to the new tiers at once, as a
    /// download would (see `TrackerAnnouncer.replaceTrackers`).
    func replaceTrackers(_ tiers: [[String]]) {
        options.trackers = tiers
        guard options.useTrackers, !sourcesClosed, ending == nil, let reactor else { return }
        let now = reactor.now
        if let trackers {
            trackers.replaceTrackers(tiers, isComplete: false, now: now)
            trackers.tick(now: now)
        } else {
            startTrackers(now: now)
        }
        reactor.touch(tenant)
    }

    func service(now: UInt64) {
        perform(now: now)
        for case let link? in links where link.connected && !link.closing && !link.sendInFlight {
            startSend(link)
        }
        guard ending != nil, !hasLeftReactor else { return }
        if !sourcesClosed {
            sourcesClosed = true
            trackers?.close()
            if let dht = options.dht, let hostKey { dht.unsubscribe(infoHash, key: hostKey) }
            if let localDiscovery = options.localDiscovery, let hostKey {
                localDiscovery.unsubscribe(infoHash, key: hostKey)
            }
        }
        for case let link? in links { close(link) }
        // Tracker operations still on the ring complete here, not under the next tenant.
        guard !links.contains(where: { $0 != nil }), trackers?.hasOperationsInFlight != true else { return }
        trackers = nil
        hasLeftReactor = true
        if let ending { endHandler?(ending) }
    }

    // MARK: Peers

    /// Offers new addresses to the directory (which, once full, gives failed peers' places to them) and
    /// keeps as many as it lists at most to hand on to the download: peer exchange brings 200 a message
    /// from each peer, on and on.
    private func hear(_ addresses: [SocketAddress]) {
        for address in addresses
        where heard.count < directory.configuration.maximumCandidates && heard.insert(address).inserted {
            peersHeard.append(address)
        }
        directory.add(addresses)
    }

    func peersDiscovered(_ peers: [SocketAddress], now: UInt64) {
        guard ending == nil else { return }
        hear(peers)
        connectToCandidates(now: now)
        reactor.touch(tenant)
    }

    private func takeTrackerPeers(now: UInt64) {
        guard let peers = trackers?.takePeers(), !peers.isEmpty else { return }
        hear(peers)
        connectToCandidates(now: now)
    }

    private func connectToCandidates(now: UInt64) {
        guard ending == nil else { return }
        let open = links.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        let limit = min(Self.maximumConnections, options.maximumPeers) - open
        guard limit > 0 else { return }
        for address in directory.takeCandidates(limit: limit, at: Instant(nanoseconds: now))
        where !connect(to: address) {
            directory.untried(address)
        }
    }

    private func connect(to address: SocketAddress) -> Bool {
        guard options.sharedConnectionBudget?.acquire() ?? true else { return false }
        guard let fd = try? Socket.makeTCP(family: address.family) else {
            options.sharedConnectionBudget?.release()
            return false
        }
        Socket.setNoDelay(fd)
        let index = links.firstIndex { $0 == nil } ?? links.count
        if index == links.count {
            links.append(nil)
            generations.append(0)
        }
        generations[index] &+= 1
        let link = Link(index: index, generation: generations[index], fd: fd, address: address)
        links[index] = link
        do {
            try ring.enqueue(.connect(fd: fd, address: address), for: slot(of: link), flags: .link)
            try ring.enqueue(.linkTimeout(.seconds(10)), for: slot(of: link))
            link.connectInFlight = true
        } catch {
            fail(.io(error))
        }
        return true
    }

    private func slot(of link: Link) -> OperationSlot {
        OperationSlot(
            owner: Self.owner, tenant: tenant, index: UInt32(link.index), generation: link.generation)
    }

    // MARK: Completions

    func handle(_ completion: Completion, now: UInt64) {
        if completion.slot.owner == TrackerClient.owner {
            trackers?.handle(completion, now: now)
            takeTrackerPeers(now: now)
            return
        }
        let index = Int(completion.slot.index)
        guard completion.slot.owner == Self.owner, index < links.count, let link = links[index],
            link.generation == completion.slot.generation
        else { return }
        switch completion.token.kind {
        case .connect:
            link.connectInFlight = false
            if completion.result == 0 && !link.closing {
                link.connected = true
                fetch.connected(link.key, into: &actions)
                armReceive(link)
            } else if !link.closing {
                drop(link, reason: "connect: \(Errno(rawValue: -completion.result))", now: now)
            }
        case .receive:
            link.receiveInFlight = false
            if completion.result > 0 && !link.closing {
                let bytes = UnsafeRawBufferPointer(rebasing: link.receiveBuffer[..<Int(completion.result)])
                fetch.received(bytes, from: link.key, now: Instant(nanoseconds: now), into: &actions)
                perform(now: now)
                armReceive(link)
            } else if !link.closing {
                let reason =
                    completion.result == 0
                    ? "closed by the peer" : "receive: \(Errno(rawValue: -completion.result))"
                drop(link, reason: reason, now: now)
            }
        case .send:
            link.sendInFlight = false
            if completion.result > 0 && !link.closing {
                link.sendOffset += Int(completion.result)
                if link.sendOffset < link.sending.count { enqueueSend(link) } else { link.sending = [] }
            } else if !link.closing {
                drop(link, reason: "send: \(Errno(rawValue: -completion.result))", now: now)
            }
        default:
            break
        }
        if link.closing && !link.hasOperationsInFlight { release(link) }
    }

    /// Carries out what the fetch decided.
    private func perform(now: UInt64) {
        while !actions.isEmpty {
            let batch = actions
            actions.removeAll(keepingCapacity: true)
            for action in batch {
                switch action {
                case .send(let bytes, let key):
                    guard let link = link(for: key), !link.closing else { continue }
                    // A peer that asks and never reads would grow its queue without end.
                    guard link.outbox.count + bytes.count <= Self.maximumQueuedBytes else {
                        drop(link, reason: "not reading: \(link.outbox.count) bytes queued for it", now: now)
                        continue
                    }
                    link.outbox += bytes
                    if !link.sendInFlight { startSend(link) }
                case .disconnect(let key, let reason):
                    if let link = link(for: key) {
                        directory.ban(link.address)
                        drop(link, reason: reason, now: now)
                    }
                case .peersLearned(let peers, let key):
                    if let link = link(for: key) { log("pex: \(peers.count) peers from \(link.address)") }
                    hear(peers.map(SocketAddress.init))
                    connectToCandidates(now: now)
                case .completed(let infoDictionary):
                    log("metadata received: \(infoDictionary.count) bytes, verified against the infohash")
                    guard ending == nil else { continue }
                    if let needs = Self.pieceLayerNeeds(infoDictionary) {
                        awaitingLayers = infoDictionary
                        log("fetching the piece layers of \(needs.needs.count) files (BEP 52)")
                        let pieceLength = needs.pieceLength
                        fetch.fetchPieceLayers(
                            needs.needs,
                            verify: { root, layer in
                                MerkleTree.root(pieceLayer: layer, pieceLength: pieceLength) == root
                            },
                            now: Instant(nanoseconds: now), into: &actions)
                    } else {
                        ending = .success(FetchedMetadata(infoDictionary: infoDictionary))
                    }
                    reactor.touch(tenant)
                case .pieceLayersCompleted(let layers):
                    guard ending == nil, let infoDictionary = awaitingLayers else { continue }
                    log("piece layers received: \(layers.count) files, verified against their roots")
                    ending = .success(FetchedMetadata(infoDictionary: infoDictionary, pieceLayers: layers))
                    reactor.touch(tenant)
                }
            }
        }
    }

    /// For a v2-only info dictionary with files longer than a piece: what to ask peers for. Nil when
    /// the dictionary needs no layers (v1, hybrid, or small files), or does not parse (the engine then
    /// says why).
    static func pieceLayerNeeds(
        _ infoDictionary: [UInt8]
    ) -> (needs: [PieceLayerFetch<LinkKey>.Need], pieceLength: Int)? {
        guard let metainfo = try? Metainfo(infoDictionary: infoDictionary), metainfo.infoHashV1 == nil else {
            return nil
        }
        let pieceLength = metainfo.layout.geometry.pieceLength
        let baseLayer = UInt32((pieceLength / MerkleTree.blockLength).trailingZeroBitCount)
        let needs = metainfo.layout.files.compactMap { file -> PieceLayerFetch<LinkKey>.Need? in
            guard let root = file.piecesRoot, file.length > Int64(pieceLength) else { return nil }
            let pieces = Int((file.length + Int64(pieceLength) - 1) / Int64(pieceLength))
            return PieceLayerFetch.Need(piecesRoot: root, pieceCount: pieces, baseLayer: baseLayer)
        }
        return needs.isEmpty ? nil : (needs, pieceLength)
    }

    private func link(for key: LinkKey) -> Link? {
        guard key.index < links.count, let link = links[key.index], link.generation == key.generation else {
            return nil
        }
        return link
    }

    private func armReceive(_ link: Link) {
        guard !link.receiveInFlight, !link.closing else { return }
        do {
            try ring.enqueue(.receive(fd: link.fd, into: link.receiveBuffer), for: slot(of: link))
            link.receiveInFlight = true
        } catch {
            fail(.io(error))
        }
    }

    private func startSend(_ link: Link) {
        guard link.sending.isEmpty, !link.outbox.isEmpty else { return }
        swap(&link.sending, &link.outbox)
        link.sendOffset = 0
        enqueueSend(link)
    }

    private func enqueueSend(_ link: Link) {
        // The bytes stay in `link.sending`, untouched, until the send completes.
        let bytes = link.sending.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[link.sendOffset...]) }
        do {
            try ring.enqueue(.send(fd: link.fd, bytes: bytes), for: slot(of: link))
            link.sendInFlight = true
        } catch {
            fail(.io(error))
        }
    }

    /// A peer leaves: it may be tried again after a back-off (unless banned).
    private func drop(_ link: Link, reason: String, now: UInt64) {
        guard !link.closing else { return }
        log("peer \(link.address): \(reason)")
        if link.connected { fetch.disconnected(link.key, now: Instant(nanoseconds: now), into: &actions) }
        directory.disconnected(link.address, at: Instant(nanoseconds: now))
        close(link)
        reactor.touch(tenant)
    }

    /// Ends the socket; the link is released once nothing of it is in flight.
    private func close(_ link: Link) {
        if !link.closing {
            link.closing = true
            ring.shutdown(socket: link.fd)
        }
        if !link.hasOperationsInFlight { release(link) }
    }

    private func release(_ link: Link) {
        guard links[link.index] === link else { return }
        Glibc.close(link.fd)
        links[link.index] = nil
        options.sharedConnectionBudget?.release()
    }

    private func fail(_ error: DownloadError) {
        if ending == nil { ending = .failure(error) }
        reactor.touch(tenant)
    }
}
