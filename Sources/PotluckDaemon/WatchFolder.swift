import Foundation
import Glibc
import TransmissionRPC

/// A folder where a `.torrent` file dropped in is added, then renamed `<name>.torrent.added` (as
/// Transmission does), so it is added once and the operator sees it was taken.
///
/// Polled (about once a second) by the daemon's main loop, off the engine's threads. A file that does
/// not parse, perhaps because it is still being copied, is tried again once its size or time changes.
struct WatchFolder {
    let path: String
    private var refused: [String: [FileAttributeKey: Any]] = [:]
    /// Files added that could not be renamed (a folder the daemon cannot write to): not added again.
    private var taken: Set<String> = []

    init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Adds each new `.torrent` file through `backend`; returns what happened to each, for the log.
    mutating func scan(into backend: EngineBackend) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        var report: [String] = []
        taken.formIntersection(names)
        for name in names.sorted() where name.hasSuffix(".torrent") && !taken.contains(name) {
            let file = path + "/" + name
            let attributes = (try? FileManager.default.attributesOfItem(atPath: file)) ?? [:]
            if let earlier = refused[name], Self.same(earlier, attributes) { continue }
            do {
                // Read as torrent-add reads a local file (a FIFO would block the daemon's loop, a link
                // to /dev/zero fill its memory).
                let outcome = try backend.add(backend.readTorrentFile(file))
                // rename(2) replaces an earlier `.added` of the same name (the same file dropped again),
                // where a refused rename left the file to be added again every second.
                if rename(file, file + ".added") != 0 {
                    report.append("watch folder: cannot rename \(name): \(String(cString: strerror(errno)))")
                    taken.insert(name)
                }
                refused[name] = nil
                switch outcome {
                case .added(let torrent): report.append("watch folder: added \(name) as #\(torrent.id)")
                case .duplicate(let torrent): report.append("watch folder: \(name) is already #\(torrent.id)")
                }
            } catch {
                refused[name] = attributes
                report.append("watch folder: cannot add \(name): \(error)")
            }
        }
        return report
    }

    private static func same(_ a: [FileAttributeKey: Any], _ b: [FileAttributeKey: Any]) -> Bool {
        (a[.size] as? Int) == (b[.size] as? Int)
            && (a[.modificationDate] as? Date) == (b[.modificationDate] as? Date)
    }
}
