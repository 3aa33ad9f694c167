import TorrentModel

// MARK: Local Service Discovery

extension DownloadSession {
    /// Listens for the torrent's peers on the LAN (BEP 14), and announces it there when we accept
    /// connections; the peers heard arrive through `peersDiscovered`, as the DHT's do. BEP 27: never for
    /// a private torrent.
    func startLocalDiscovery() {
        guard let localDiscovery = options.localDiscovery, let hostKey, !metainfo.isPrivate else { return }
        localDiscovery.subscribe(
            metainfo.wireInfoHash, key: hostKey, reply: reactor.doorbell,
            announcePort: options.announcedPort ?? boundAddress?.port)
    }

    /// Nothing is heard or announced for the torrent any longer (again: no harm).
    func stopLocalDiscovery() {
        guard let localDiscovery = options.localDiscovery, let hostKey else { return }
        localDiscovery.unsubscribe(metainfo.wireInfoHash, key: hostKey)
    }
}
