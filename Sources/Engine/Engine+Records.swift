import DHT
import Dispatch
import Glibc
import Hashing
import Metainfo
import Synchronization
import TorrentModel
import URing

// What the engine keeps about each torrent, and the running totals over all of them.
extension Engine {
    struct Record {
        let id: TorrentID
        /// Nil for a magnet link until its metadata arrives.
        var metainfo: Metainfo?
        let infoHash: InfoHash
        var options: DownloadOptions
        var reactor: Int
        var activity: TorrentActivity = .starting
        var status: DownloadStatus?
        var statusReports = 0
        /// Placed on its reactor and not yet ended.
        var live = false
        /// Live, but left its reactor to rest: a stand-in wakes it when needed (`RestingTorrent`).
        var resting = false
        var removing = false
        /// Bumped at each start, so the commands and reports of an earlier run are told apart.
        var run = 0
        /// What most torrents at rest do not have, out of line (see `Occasional`).
        private var occasional: Occasional?

        init(
            id: TorrentID, metainfo: Metainfo?, magnet: MagnetLink? = nil, infoHash: InfoHash,
            options: DownloadOptions, reactor: Int
        ) {
            self.id = id
            self.metainfo = metainfo
            self.infoHash = infoHash
            self.options = options
            self.reactor = reactor
            self.magnet = magnet
        }

        /// The link a torrent was added by, if it was.
        var magnet: MagnetLink? {
            get { occasional?.fields.magnet }
            set { updateOccasional(clearing: newValue == nil) { $0.magnet = newValue } }
        }
        var metadataFetch: MetadataFetchStatus? {
            get { occasional?.fields.metadataFetch }
            set { updateOccasional(clearing: newValue == nil) { $0.metadataFetch = newValue } }
        }
        var metadataReceivedAt: ContinuousClock.Instant? {
            get { occasional?.fields.metadataReceivedAt }
            set { updateOccasional(clearing: newValue == nil) { $0.metadataReceivedAt = newValue } }
        }
        var ended: Result<DownloadOutcome, DownloadError>? {
            get { occasional?.fields.ended }
            set { updateOccasional(clearing: newValue == nil) { $0.ended = newValue } }
        }
        /// A move of its files, decided or running.
        var move: PendingMove? {
            get { occasional?.fields.move }
            set { updateOccasional(clearing: newValue == nil) { $0.move = newValue } }
        }

        var failure: DownloadError? {
            if case .failure(let error) = ended { return error }
            return nil
        }

        var name: String { metainfo?.name ?? magnet?.displayName ?? infoHash.hex }

        /// A magnet link and its fetch, an ending, a move: about 280 bytes that most of 10,000 torrents at
        /// rest never use, shared between copies of a record until one changes them.
        private final class Occasional {
            struct Fields {
                var magnet: MagnetLink?
                var metadataFetch: MetadataFetchStatus?
                var metadataReceivedAt: ContinuousClock.Instant?
                var ended: Result<DownloadOutcome, DownloadError>?
                var move: PendingMove?
            }
            var fields: Fields
            init(_ fields: Fields) { self.fields = fields }
        }

        /// Changes the out-of-line fields, copying them first if another record shares them; clearing a
        /// field no record has set makes no box.
        private mutating func updateOccasional(clearing: Bool, _ change: (inout Occasional.Fields) -> Void) {
            if occasional == nil {
                if clearing { return }
                occasional = Occasional(Occasional.Fields())
            } else if !isKnownUniquelyReferenced(&occasional) {
                occasional = Occasional(occasional!.fields)
            }
            change(&occasional!.fields)
        }
    }

    /// The records, with running totals kept as each one changes: a summary over thousands of torrents,
    /// asked for several times a second, costs nothing per torrent.
    struct RecordTable {
        /// Boxed: a dictionary keeps spare room, which for records of about 750 bytes each was half of
        /// what the engine held per torrent at rest.
        fileprivate final class RecordBox {
            var record: Record
            init(_ record: Record) { self.record = record }

            /// Read stored field by stored field where the record lies: a computed property of the
            /// record, or the record passed on, copies all of it first (a dozen references), which
            /// cost more than the snapshot; the daemon takes one of every torrent each second.
            var snapshot: TorrentSnapshot {
                let metainfoName = record.metainfo?.name
                return TorrentSnapshot(
                    id: record.id, name: metainfoName ?? record.magnet?.displayName ?? record.infoHash.hex,
                    infoHash: record.infoHash,
                    activity: record.activity, status: record.status, statusReports: record.statusReports,
                    ended: record.ended, isLive: record.live, isResting: record.resting,
                    limits: record.options.limits,
                    metadataFetch: record.metadataFetch, hasMetadata: metainfoName != nil,
                    metadataReceivedAt: record.metadataReceivedAt,
                    downloadDirectory: record.options.downloadDirectory)
            }
        }

        private var records: [TorrentID: RecordBox] = [:]
        /// Which records changed lately, for front ends that keep what they made of each
        /// (`Engine.changes(since:)`).
        private(set) var journal = ChangeJournal<TorrentID>()
        private var totals = EngineSummary()
        /// Failed torrents' reports, for the summary's first failure (few, unlike the torrents).
        private var failures: [TorrentID: (report: String, exhausts: Bool)] = [:]

        var values: [Record] { records.values.map(\.record) }
        var liveCount: Int { totals.live }

        subscript(id: TorrentID) -> Record? {
            get { records[id]?.record }
            set {
                journal.record(id)
                if let box = records[id] {
                    count(box.record, sign: -1)
                    if let newValue {
                        box.record = newValue
                    } else {
                        records[id] = nil
                    }
                } else if let newValue {
                    records[id] = RecordBox(newValue)
                }
                if let newValue { count(newValue, sign: 1) }
            }
        }

        func snapshot(of id: TorrentID) -> TorrentSnapshot? { records[id]?.snapshot }

        var snapshots: [TorrentSnapshot] { records.values.map(\.snapshot) }

        mutating func removeValue(forKey id: TorrentID) -> Record? {
            let record = records[id]?.record
            self[id] = nil
            return record
        }

        var summary: EngineSummary {
            var summary = totals
            // Sums of rates that went up and down may be a hair below zero.
            summary.uploadRateBytesPerSecond = max(0, summary.uploadRateBytesPerSecond)
            summary.downloadRateBytesPerSecond = max(0, summary.downloadRateBytesPerSecond)
            if let first = failures.min(by: { $0.key.value < $1.key.value }) {
                summary.firstFailure = first.value.report
            }
            summary.exhaustedProcessResources = failures.values.contains { $0.exhausts }
            return summary
        }

        private mutating func count(_ record: Record, sign: Int) {
            totals.torrents += sign
            if record.live { totals.live += sign }
            if record.resting { totals.resting += sign }
            if let failure = record.failure {
                totals.failed += sign
                failures[record.id] =
                    sign > 0
                    ? ("\(record.name): \(failure)", failure.exhaustsProcessResources) : nil
            }
            guard let status = record.status else { return }
            totals.uploadedPayloadBytes += Int64(sign) * status.uploadedPayloadBytes
            totals.downloadedPayloadBytes += Int64(sign) * status.downloadedPayloadBytes
            totals.uploadRateBytesPerSecond += Double(sign) * status.uploadRateBytesPerSecond
            totals.downloadRateBytesPerSecond += Double(sign) * status.downloadRateBytesPerSecond
            totals.connectedPeers += sign * status.connectedPeers
        }
    }
}
