import Foundation
import TransmissionRPC

/// A folder where a `.torrent` file dropped in is added, then renamed `<name>.torrent.added` (as
/// Transmission does), so it is added once and the operator sees it was taken.
///
/// Polled (about once a second) by the daemon's main loop, off the engine's threads. A file that does
/// not parse, perhaps because it is still being copied, is tried again once its size or time changes.
struct WatchFolder {
    let path: String
    private var refused: [String: [FileAttributeKey: Any]] = [:]

    init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Adds each new `.torrent` file through `backend`; returns what happened to each, for the log.
    mutating func scan(into backend: EngineBackend) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        var report: [String] = []
        for name in names.sorted() where name.hasSuffix(".torrent") {
            let file = path + "/" + name
            let attributes = (try? FileManager.default.attributesOfItem(atPath: file)) ?? [:]
            if let earlier = refused[name], Self.same(earlier, attributes) { continue }
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            do {
                let outcome = try backend.add(Array(bytes))
                try? FileManager.default.moveItem(atPath: file, toPath: file + ".added")
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
