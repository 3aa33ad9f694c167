import Engine
import Locking
import Metainfo
import Storage
import TorrentModel

/// One torrent of the daemon: the engine's handle, its metainfo, and what the daemon keeps about it.
///
/// A value whose fields live in one shared box, copied on write: the registry's dictionary keeps
/// room for a third more entries than it holds, and with the fields inline (about 700 bytes) that
/// room alone was a megabyte per 1,000 torrents; a snapshot of every torrent copies a reference each.
struct DaemonTorrent: Sendable {
    /// Only ever changed while uniquely referenced (`fields`), so never by two threads at once.
    private final class Box: @unchecked Sendable {
        var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    /// A magnet link out of line: most torrents come from a .torrent and would carry its 112 bytes empty.
    fileprivate final class KeptMagnet: Sendable {
        let link: MagnetLink
        init(_ link: MagnetLink) { self.link = link }
    }

    struct Fields {
        let id: TorrentID
        var metainfo: Metainfo?
        fileprivate let magnet: KeptMagnet?
        var hash: InfoHash
        var settings: StoredTorrent
        var runUploaded: Int64 = 0
        var runDownloaded: Int64 = 0
        var startDate = 0
        var pauseAfterCheck = false
        var waiting = false
        var bypassesQueue = false
        var restoredVerified: PieceSet?
        var dataLooksComplete = false
        var renamedPaths: [[String]]?
        /// The daemon's log that each change of these fields is told to.
        let changeLog: TorrentChangeLog
    }

    private var box: Box

    /// The fields to change, copied first when the box is shared; the change is logged
    /// (`changeLog`). (Reads go to `box.fields.name`: a getter returning all the fields would copy
    /// them all for each one read; the larger ones are lent, not copied.)
    private var fields: Fields {
        get { box.fields }
        _modify {
            if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
            box.fields.changeLog.record(box.fields.id)
            yield &box.fields
        }
    }

    /// Counts a second of downloading or seeding, unlogged: every running torrent does so every
    /// second, which would leave no kept row standing, and no kept row shows these counters
    /// (`TorrentField.listFields`).
    mutating func countSecond(seeding: Bool) {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
        if seeding {
            box.fields.settings.secondsSeeding += 1
        } else {
            box.fields.settings.secondsDownloading += 1
        }
    }

    var id: TorrentID { box.fields.id }
    /// Nil for a torrent added by magnet link until its metadata arrives.
    var metainfo: Metainfo? {
        _read { yield box.fields.metainfo }
        set { fields.metainfo = newValue }
    }
    /// The link it was added by, if it was.
    var magnet: MagnetLink? { box.fields.magnet?.link }
    /// What its state files are named by: the infohash peers know it by (its v1 one for a hybrid,
    /// even when a v2 link added it).
    var hash: InfoHash {
        get { box.fields.hash }
        set { fields.hash = newValue }
    }
    var settings: StoredTorrent {
        _read { yield box.fields.settings }
        _modify { yield &fields.settings }
    }
    /// The engine's upload and download counters for the torrent's current run, as last seen; they
    /// start again from zero at each run, so `settings` keeps the earlier runs' sum.
    var runUploaded: Int64 {
        get { box.fields.runUploaded }
        set { fields.runUploaded = newValue }
    }
    var runDownloaded: Int64 {
        get { box.fields.runDownloaded }
        set { fields.runDownloaded = newValue }
    }
    /// When the torrent last started, Unix seconds (0 while stopped since the daemon started).
    var startDate: Int {
        get { box.fields.startDate }
        set { fields.startDate = newValue }
    }
    /// A verify of a paused torrent: pause it again once the check is over.
    var pauseAfterCheck: Bool {
        get { box.fields.pauseAfterCheck }
        set { fields.pauseAfterCheck = newValue }
    }
    /// Started by a client but held in the queue until a slot is free; stopped in the engine meanwhile.
    var waiting: Bool {
        get { box.fields.waiting }
        set { fields.waiting = newValue }
    }
    /// Waiting only for the engine to finish stopping it, to start whatever the queue says
    /// (torrent-start-now).
    var bypassesQueue: Bool {
        get { box.fields.bypassesQueue }
        set { fields.bypassesQueue = newValue }
    }
    /// Verified bytes read from resume data, for a torrent the engine has not reported on yet.
    var restoredVerified: PieceSet? {
        _read { yield box.fields.restoredVerified }
        set { fields.restoredVerified = newValue }
    }
    /// Without resume data: whether its files are on disk at their full sizes (see `queueDirection`).
    var dataLooksComplete: Bool {
        get { box.fields.dataLooksComplete }
        set { fields.dataLooksComplete = newValue }
    }
    /// Its files' paths once a client renamed some (torrent-rename-path); nil: the metainfo's.
    var renamedPaths: [[String]]? {
        _read { yield box.fields.renamedPaths }
        set { fields.renamedPaths = newValue }
    }

    init(id: TorrentID, metainfo: Metainfo, settings: StoredTorrent, changeLog: TorrentChangeLog) {
        box = Box(
            Fields(
                id: id, metainfo: metainfo, magnet: nil, hash: metainfo.wireInfoHash, settings: settings,
                changeLog: changeLog))
        changeLog.record(id)
    }

    init(
        id: TorrentID, magnet: MagnetLink, hash: InfoHash, settings: StoredTorrent,
        changeLog: TorrentChangeLog
    ) {
        box = Box(
            Fields(
                id: id, metainfo: nil, magnet: KeptMagnet(magnet), hash: hash, settings: settings,
                changeLog: changeLog))
        changeLog.record(id)
    }

    /// Stopped by a seed limit, or by a client (`settings.paused`): not started, not waiting.
    var isStopped: Bool { settings.paused || settings.seedLimitReached == true }

    /// The torrent's name (its top folder's or single file's, renamed or not), or until its metadata
    /// arrives the link's `dn` (else its infohash).
    var name: String { renamedPaths?.first?.first ?? metainfo?.name ?? magnet?.displayName ?? hash.hex }

    /// Where each file is under the download folder: renamed, else the metainfo's paths.
    var filePaths: [[String]] { renamedPaths ?? metainfo?.files.map(\.path) ?? [] }
    var uploadedEver: Int64 { settings.uploadedEver + runUploaded }
    var downloadedEver: Int64 { settings.downloadedEver + runDownloaded }

    /// Takes in the engine's latest counters: a drop means a new run began, so the last run's
    /// counters join the totals. Returns the bytes moved since the last look.
    @discardableResult
    mutating func absorbCounters(uploaded: Int64, downloaded: Int64) -> (uploaded: Int64, downloaded: Int64) {
        // Unchanged, the torrent keeps its revision (and torrent-get its kept row).
        if uploaded == runUploaded && downloaded == runDownloaded { return (0, 0) }
        var since = (uploaded: uploaded - runUploaded, downloaded: downloaded - runDownloaded)
        if uploaded < runUploaded || downloaded < runDownloaded {
            settings.uploadedEver += runUploaded
            settings.downloadedEver += runDownloaded
            since = (uploaded, downloaded)
        }
        runUploaded = uploaded
        runDownloaded = downloaded
        return since
    }

    /// The bytes that resume data at `path` vouches for; nil without readable resume data. Only an
    /// estimate until the engine checks the files' sizes and times against it.
    static func verifiedPieces(in path: String, metainfo: Metainfo) -> PieceSet? {
        try? ResumeData.load(from: path, infoHash: metainfo.wireInfoHash, layout: metainfo.layout).verified
    }

    /// The bytes of `pieces`.
    static func bytes(of pieces: PieceSet, in metainfo: Metainfo) -> Int64 {
        var bytes: Int64 = 0
        pieces.forEach { bytes += Int64(metainfo.geometry.length(of: $0)) }
        return bytes
    }
}

/// What a torrent is added from: its metainfo, or a magnet link to fetch that by.
enum TorrentOrigin: Sendable {
    case metainfo(Metainfo)
    case magnet(MagnetLink)

    var metainfo: Metainfo? {
        if case .metainfo(let metainfo) = self { return metainfo }
        return nil
    }

    var name: String {
        switch self {
        case .metainfo(let metainfo): metainfo.name
        case .magnet(let magnet): magnet.displayName ?? magnet.wireInfoHash?.hex ?? "magnet"
        }
    }

    /// Files known now (none for a magnet link: its files come with the metadata).
    var fileCount: Int {
        switch self {
        case .metainfo(let metainfo): metainfo.files.count
        case .magnet: 0
        }
    }
}

/// The ids of a daemon's torrents as they are made and changed, which every torrent of the daemon
/// tells: torrent-get's kept rows look again at those only (`KeptRows`).
final class TorrentChangeLog: Sendable {
    private let journal = Lock<ChangeJournal<TorrentID>>(ChangeJournal())

    func record(_ id: TorrentID) { journal.withLock { $0.record(id) } }

    /// The mark of the torrents' state now (`ChangeJournal.mark`).
    var mark: Int { journal.withLock { $0.mark } }

    /// The torrents made or changed since `mark`, or nil if the log no longer knows.
    func changedIDs(since mark: Int) -> Set<TorrentID>? { journal.withLock { $0.changedIDs(since: mark) } }
}
