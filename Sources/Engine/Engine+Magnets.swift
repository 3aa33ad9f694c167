import DHT
import Dispatch
import Glibc
import Hashing
import Metainfo
import Synchronization
import TorrentModel
import URing

// Torrents added by magnet link: the metadata stage on a reactor, then the torrent as any other.
extension Engine {
    /// Adds a torrent by its magnet link: its info dictionary is fetched from peers (the link's `x.pe`,
    /// `options.peers`, the link's trackers), checked against the infohash, and the torrent then starts
    /// as `add(_:options:)` would (with the peers heard so far). `metainfo(of:)` has it from then on.
    @discardableResult
    public func add(magnet: MagnetLink, options: DownloadOptions) throws(EngineError) -> TorrentID {
        guard let infoHash = magnet.wireInfoHash else {
            throw .unsupportedMagnet("the link names no infohash")
        }
        return try admit(infoHash, options: options) { id, options, reactor in
            Record(
                id: id, metainfo: nil, magnet: magnet, infoHash: infoHash, options: options, reactor: reactor)
        }
    }

    /// The torrent's metainfo: nil for a magnet link whose metadata has not arrived (or no such torrent).
    public func metainfo(of id: TorrentID) -> Metainfo? {
        state.withLock { $0.records[id]?.metainfo }
    }

    /// Places the fetch of a magnet link's metadata on the torrent's reactor; once it has the
    /// metadata, the torrent starts again as any other, with the peers the fetch heard of.
    func fetchMetadata(_ id: TorrentID, options: DownloadOptions, reactor: Int, run: Int) {
        guard let magnet = state.withLock({ $0.records[id]?.magnet }) else { return }
        let log = self.log
        let namesTorrents = namesTorrentsInLog
        let name = magnet.displayName ?? magnet.infoHashV1?.hex ?? "magnet"
        inboxes[reactor].submit { [self] reactor in
            let prefixed: (String) -> Void = { message in log(namesTorrents ? "\(name): \(message)" : message)
            }
            guard let fetch = MetadataFetchSession(magnet: magnet, options: options, log: prefixed) else {
                ended(id, run: run, outcome: .failure(.metadata("the magnet link names no infohash")))
                return
            }
            fetch.hostKey = HostKey(id: id, run: run)
            fetch.statusHandler = { [self] status in
                state.withLock { state in
                    guard var record = state.records[id], record.run == run, record.live else { return }
                    record.metadataFetch = status
                    record.statusReports += 1
                    state.records[id] = record
                }
            }
            fetch.endHandler = { [self, unowned fetch] result in
                switch result {
                case .success(let fetched?):
                    metadataFetched(id, run: run, fetched: fetched, peers: fetch.peersHeard, magnet: magnet)
                case .success(nil):
                    ended(id, run: run, outcome: .success(.interrupted))
                case .failure(let error):
                    ended(id, run: run, outcome: .failure(error))
                }
            }
            if !reactor.host(fetch) { ended(id, run: run, outcome: .failure(.reactorFull)) }
        }
    }

    /// BEP 53: the files a link's `so=` names (by their index in the info dictionary's list, as
    /// `potluck info` numbers them), wanted, and the others skipped; nil when it names none of them.
    public static func selectedFiles(of magnet: MagnetLink, in metainfo: Metainfo) -> [FilePriority]? {
        guard !magnet.selectedFiles.isEmpty else { return nil }
        let chosen = FilePriorities(layout: metainfo.layout, only: [.indices(magnet.selectedFiles)])
        return chosen.wantedFiles(in: metainfo.layout).contains(true) ? chosen.values : nil
    }

    /// On the reactor: a magnet link's info dictionary arrived and matched. It becomes the torrent's
    /// metainfo (with the link's trackers and web seeds), and the torrent starts downloading.
    private func metadataFetched(
        _ id: TorrentID, run: Int, fetched: FetchedMetadata, peers: [SocketAddress], magnet: MagnetLink
    ) {
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(
                bytes: magnet.torrentFile(
                    infoDictionary: fetched.infoDictionary, pieceLayers: fetched.pieceLayers))
        } catch {
            ended(id, run: run, outcome: .failure(.metadata("the info dictionary is not usable: \(error)")))
            return
        }
        let restart = state.withLock { state -> Bool in
            guard var record = state.records[id], record.run == run else { return false }
            record.metainfo = metainfo
            record.metadataFetch = nil
            record.metadataReceivedAt = .now
            if record.options.filePriorities == nil, let chosen = Self.selectedFiles(of: magnet, in: metainfo)
            {
                record.options.filePriorities = chosen
            }
            // Still live: its session starts at once (a snapshot in between must not see it ended).
            var known = Set(record.options.peers)
            record.options.peers += peers.filter { known.insert($0).inserted }
            state.records[id] = record
            // Paused or removed while the metadata arrived: it stays (or goes) as asked.
            guard record.activity == .fetchingMetadata, !record.removing else { return false }
            record.activity = .starting
            state.records[id] = record
            return true
        }
        if restart {
            start(id)
        } else {
            ended(id, run: run, outcome: .success(.interrupted))
        }
    }
}
