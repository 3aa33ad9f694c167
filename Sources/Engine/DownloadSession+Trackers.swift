import Buffers
import Glibc
import Hashing
import Metainfo
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

// MARK: Trackers

extension DownloadSession {
    /// Starts announcing, if the torrent has trackers and they are wanted. BEP 27: a private torrent's
    /// peers come only from its trackers (and `--peer`); no other source (DHT, PEX, LSD) exists here.
    func startTrackers() {
        guard options.useTrackers, !announceTiers.isEmpty else { return }
        let totalBytes = UInt64(max(0, metainfo.totalLength))
        trackers = TrackerAnnouncer(
            ring: ring, tenant: tenant, udp: reactor.udpTrackers,
            // Only a torrent whose figures someone reads is scraped.
            scrapes: options.trackerBoard == nil ? nil : reactor.scrapes, trackers: announceTiers,
            isPrivate: metainfo.isPrivate,
            infoHash: metainfo.wireInfoHash, peerID: localPeerID,
            port: options.announcedPort ?? boundAddress?.port ?? 0,
            seed: options.seed, extraCAFile: options.trackerCAFile, board: options.trackerBoard,
            totals: { [unowned self] in
                var verifiedBytes: UInt64 = 0
                for piece in verified.pieces { verifiedBytes += UInt64(geometry.length(of: piece)) }
                return TrackerAnnouncer.Totals(
                    uploadedBytes: UInt64(max(0, uploadedBytes)),
                    downloadedBytes: UInt64(max(0, downloadedBytes)),
                    leftBytes: totalBytes - min(totalBytes, verifiedBytes))
            }, log: log)
        trackers?.trackerAnswered = { [unowned self] now in
            takeTrackerPeers()
            reactor.touch(tenant)
        }
        // A session taking over from one that rested announces on its schedule; others send `started`.
        let rested = restedTrackers.take()
        if rested.map({ trackers?.resume($0, now: nowNanoseconds) == true }) != true {
            trackers?.start(now: nowNanoseconds, isComplete: verified.isComplete)
        }
        // `started` (or an announce that fell due while resting) goes out now, not at the first tick.
        trackers?.tick(now: nowNanoseconds)
    }

    /// The tiers announced to: a front end's edited list, else the metainfo's.
    var announceTiers: [[String]] { options.trackers ?? metainfo.trackers }

    /// A front end edited the announce list: a running torrent announces to the new tiers at once (see
    /// `TrackerAnnouncer.replaceTrackers`); one not trading yet starts with them.
    func replaceTrackers(_ tiers: [[String]]) {
        options.trackers = tiers
        guard isTrading, !stopping, options.useTrackers else { return }
        let now = nowNanoseconds
        if let trackers {
            trackers.replaceTrackers(tiers, isComplete: verified.isComplete, now: now)
            trackers.tick(now: now)
        } else {
            startTrackers()
        }
        reactor.touch(tenant)
    }

    /// The shortest gap between two announces a client asks for: more often would hammer the trackers.
    static let reannounceGapNanoseconds: UInt64 = 60_000_000_000

    /// A client asked to announce now (Transmission's torrent-reannounce): the trackers are asked at
    /// once, within their own `min interval`; asked again within a minute, nothing is done.
    func reannounce(now: UInt64) {
        guard let trackers, isTrading, !stopping else { return }
        if let last = lastReannounceNanoseconds, now < last || now - last < Self.reannounceGapNanoseconds {
            log("reannounce ignored: the last one was \((max(now, last) - last) / 1_000_000_000) s ago")
            return
        }
        lastReannounceNanoseconds = now
        trackers.announceNow(now: now)
        trackers.tick(now: now)
        reactor.touch(tenant)
    }

    /// A tracker's completion; the peers it brought are connected to at once, not at the next tick.
    func trackerCompleted(_ completion: Completion, now: UInt64) {
        guard let trackers else { return }
        trackers.handle(completion, now: now)
        takeTrackerPeers()
    }

    private func takeTrackerPeers() {
        guard let peers = trackers?.takePeers(), !peers.isEmpty else { return }
        addCandidates(peers)
        connectToCandidates()
    }

    /// Looks the torrent up in the engine's DHT, and announces it there when we accept connections.
    /// BEP 27: never for a private torrent.
    func startDHT() {
        guard let dht = options.dht, let hostKey, !metainfo.isPrivate, !dhtSubscribed else { return }
        dhtSubscribed = true
        dht.subscribe(
            metainfo.wireInfoHash, key: hostKey, reply: reactor.doorbell,
            announcePort: options.announcedPort ?? boundAddress?.port)
    }

    func stopDHT() {
        guard dhtSubscribed, let dht = options.dht, let hostKey else { return }
        dhtSubscribed = false
        dht.unsubscribe(metainfo.wireInfoHash, key: hostKey)
    }

    /// Peers found by the DHT: candidates, connected to at once.
    func peersDiscovered(_ peers: [SocketAddress], now: UInt64) {
        guard isTrading, !stopping else { return }
        addCandidates(peers)
        connectToCandidates()
        reactor.touch(tenant)
    }

    /// Peers from a tracker: new addresses become candidates (ourselves excluded).
    func addCandidates(_ addresses: [SocketAddress]) {
        guard !addresses.isEmpty else { return }
        peerDirectory.add(
            addresses.lazy.filter { [boundAddress] address in
                guard let boundAddress else { return true }
                return address.port != boundAddress.port || !address.isLoopbackOrSame(as: boundAddress)
            })
    }
}

extension SocketAddress {
    /// Whether this is `other`'s address, or loopback while `other` is a wildcard or loopback address.
    fileprivate func isLoopbackOrSame(as other: SocketAddress) -> Bool {
        if self == other { return true }
        switch (self, other) {
        case (.ipv4(let address, _), .ipv4(let otherAddress, _)):
            return address >> 24 == 127 && (otherAddress == 0 || otherAddress >> 24 == 127)
        default:
            return false
        }
    }
}
