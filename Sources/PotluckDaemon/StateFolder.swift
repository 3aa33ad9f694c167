import CLinux
import Engine
import Foundation
import Glibc
import TorrentModel
import TransmissionRPC

/// The daemon's folder of everything it must not lose: each torrent's .torrent bytes and settings,
/// the resume data the engine writes, and the session's settings and totals.
///
/// Layout under the root:
/// - `torrents/<infohash>.torrent` and `torrents/<infohash>.json` (``StoredTorrent``); a torrent added
///   by magnet link has `torrents/<infohash>.magnet` (the link's text) until its metadata arrives,
/// - `resume/<infohash>.resume` (written by the engine),
/// - `session.json` (the session-set keys changed over RPC) and `stats.json` (``StoredTotals``).
///
/// Every write goes to a temporary file that is flushed to disk and renamed over the old one, then the
/// folder itself is flushed: a `kill -9` or a power cut leaves either the old file or the new one.
public struct StateFolder: Sendable {
    public let root: String
    /// Kept rather than made when asked: every torrent's engine options share this one string.
    public let resumeFolder: String

    /// Creates the folder and its subfolders if missing.
    public init(root: String) throws {
        self.root = root
        resumeFolder = root + "/resume"
        for folder in [root, root + "/torrents", resumeFolder] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
    }

    public func torrentFile(_ hash: InfoHash) -> String { "\(root)/torrents/\(hash.hex).torrent" }
    public func settingsFile(_ hash: InfoHash) -> String { "\(root)/torrents/\(hash.hex).json" }
    public func resumeFile(_ hash: InfoHash) -> String {
        DownloadOptions.resumeFile(in: resumeFolder, infoHash: hash)
    }
    public func magnetFile(_ hash: InfoHash) -> String { "\(root)/torrents/\(hash.hex).magnet" }
    var sessionFile: String { root + "/session.json" }
    var totalsFile: String { root + "/stats.json" }

    /// Keeps a new torrent: its metainfo first, then its settings, so that settings never name a
    /// torrent whose bytes are missing.
    func store(metainfo bytes: [UInt8], settings: StoredTorrent, hash: InfoHash) throws {
        try Self.writeAtomically(bytes, to: torrentFile(hash))
        try save(settings, hash: hash)
    }

    /// Keeps a torrent added by magnet link: the link first, then its settings.
    func store(magnet link: String, settings: StoredTorrent, hash: InfoHash) throws {
        try Self.writeAtomically(Array(link.utf8), to: magnetFile(hash))
        try save(settings, hash: hash)
    }

    /// A magnet link's metadata arrived: its .torrent is kept, then the link is no longer needed.
    func storeFetched(metainfo bytes: [UInt8], hash: InfoHash) throws {
        try Self.writeAtomically(bytes, to: torrentFile(hash))
        unlink(magnetFile(hash))
    }

    /// Without `flushing`, the new settings survive a kill but maybe not a power loss.
    func save(_ settings: StoredTorrent, hash: InfoHash, flushing: Bool = true) throws {
        try Self.writeAtomically(
            Array(try Self.encoder.encode(settings)), to: settingsFile(hash), flushing: flushing)
    }

    /// Saves many torrents' settings with one flush of the state's file system at the end instead of
    /// two per file (thousands of torrents at shutdown); returns the problems met.
    func saveAll(_ torrents: [(settings: StoredTorrent, hash: InfoHash)]) -> [String] {
        var problems: [String] = []
        for (settings, hash) in torrents {
            do {
                try Self.writeAtomically(
                    Array(try Self.encoder.encode(settings)), to: settingsFile(hash), flushing: false)
            } catch {
                problems.append("\(error)")
            }
        }
        flushSaves()
        return problems
    }

    /// Makes what was saved without `flushing` durable: one flush of the state folder's file system
    /// (its data and the folder's names) instead of two per file.
    func flushSaves() {
        let fd = open(root + "/torrents", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        potluck_syncfs(fd)
        close(fd)
    }

    /// Forgets a torrent: its settings first (what restoring looks for), then its bytes and resume data.
    func forget(_ hash: InfoHash) {
        for path in [settingsFile(hash), torrentFile(hash), magnetFile(hash), resumeFile(hash)] {
            unlink(path)
        }
        Self.syncFolder(root + "/torrents")
    }

    /// What a kept torrent was added from.
    enum StoredSource: Sendable {
        case metainfo([UInt8])
        /// A magnet link whose metadata had not arrived.
        case magnet(String)
    }

    /// Every kept torrent that has both its settings and its metainfo (or magnet link), oldest added
    /// first, read on every core; files that cannot be read are reported through `problem` and skipped.
    func storedTorrents(
        problem: (String) -> Void
    ) -> [(settings: StoredTorrent, source: StoredSource, hash: InfoHash)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/torrents")) ?? []
        let hashes = names.filter { $0.hasSuffix(".json") }.compactMap {
            InfoHash(hex: String($0.dropLast(".json".count)))
        }
        var found: [(settings: StoredTorrent, source: StoredSource, hash: InfoHash)] = []
        for (hash, read) in zip(hashes, hashes.concurrentMap(storedTorrent)) {
            switch read {
            case .kept(let settings, let source): found.append((settings, source, hash))
            case .unreadable(let reason): problem(reason)
            }
        }
        return found.sorted {
            ($0.settings.addedDate, $0.settings.order) < ($1.settings.addedDate, $1.settings.order)
        }
    }

    private enum StoredRead: Sendable {
        case kept(StoredTorrent, StoredSource)
        case unreadable(String)
    }

    private func storedTorrent(_ hash: InfoHash) -> StoredRead {
        guard let json = FileManager.default.contents(atPath: settingsFile(hash)),
            let settings = try? JSONDecoder().decode(StoredTorrent.self, from: json)
        else { return .unreadable("cannot read \(settingsFile(hash)); that torrent is left out") }
        if let bytes = FileManager.default.contents(atPath: torrentFile(hash)) {
            return .kept(settings.bounded(), .metainfo(Array(bytes)))
        }
        if let link = FileManager.default.contents(atPath: magnetFile(hash)) {
            return .kept(settings.bounded(), .magnet(String(decoding: link, as: UTF8.self)))
        }
        return .unreadable("\(torrentFile(hash)) is missing; that torrent is left out")
    }

    func loadSessionSettings() -> [String: JSONValue] {
        guard let data = FileManager.default.contents(atPath: sessionFile) else { return [:] }
        return (try? JSONDecoder().decode([String: JSONValue].self, from: data)) ?? [:]
    }

    func saveSessionSettings(_ settings: [String: JSONValue]) throws {
        try Self.writeAtomically(Array(try Self.encoder.encode(settings)), to: sessionFile)
    }

    func loadTotals() -> StoredTotals {
        guard let data = FileManager.default.contents(atPath: totalsFile) else { return StoredTotals() }
        return (try? JSONDecoder().decode(StoredTotals.self, from: data))?.bounded() ?? StoredTotals()
    }

    func saveTotals(_ totals: StoredTotals) throws {
        try Self.writeAtomically(Array(try Self.encoder.encode(totals)), to: totalsFile)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }()

    /// Writes `bytes` to a temporary file beside `path`, flushes it, renames it over `path` and
    /// flushes the folder, so the rename itself survives a crash. Without `flushing` the caller
    /// flushes the whole filesystem afterwards.
    static func writeAtomically(_ bytes: [UInt8], to path: String, flushing: Bool = true) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StateError(path: temporary, errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let error = errno
                close(fd)
                throw StateError(path: temporary, errno: error)
            }
            written += count
        }
        guard !flushing || fsync(fd) == 0 else {
            let error = errno
            close(fd)
            throw StateError(path: temporary, errno: error)
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw StateError(path: path, errno: errno) }
        if flushing { syncFolder((path as NSString).deletingLastPathComponent) }
    }

    private static func syncFolder(_ folder: String) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

/// A state file could not be written.
struct StateError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32

    var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
}
