import Engine
import Foundation
import Metainfo
import TorrentModel
import TransmissionRPC

// Where each torrent's data is: its download folder, or the session's incomplete folder until it is
// complete; torrent-set-location and torrent-set's `location` change it; the operator bounds them all.
extension EngineBackend {
    /// The folder a newly added torrent downloads into while incomplete (nil: its download folder).
    /// Not for a torrent whose files are already in its download folder (added to seed them).
    static func incompleteDirectory(
        for source: TorrentOrigin, downloadDirectory: String, session: SessionSettings
    ) -> String? {
        guard session.incompleteDirectoryEnabled, !session.incompleteDirectory.isEmpty,
            session.incompleteDirectory != downloadDirectory
        else { return nil }
        if case .metainfo(let metainfo) = source {
            let present = metainfo.files.contains { file in
                !file.isPadding
                    && FileManager.default.fileExists(
                        atPath: downloadDirectory + "/" + file.path.joined(separator: "/"))
            }
            if present { return nil }
        }
        return session.incompleteDirectory
    }

    /// Refuses a folder the operator does not allow (`--allowed-dirs`) with the reason.
    func checkAllowed(_ path: String, as name: String) throws {
        if let refusal = allowedFolders.refusal(of: path) { throw RPCFailure("\(name): \(refusal)") }
    }

    public func setLocation(of selection: TorrentSelection, to location: String, move: Bool) async throws {
        try checkAllowed(location, as: "location")
        let chosen = registry.withLock { Self.resolve(selection, in: $0, now: Self.now()) }
        for torrent in chosen {
            do {
                try engine.move(torrent.id, to: location, movingFiles: move)
            } catch {
                throw RPCFailure("\(torrent.name): \(error)")
            }
            // A magnet link's torrent has no files yet: its folder is all there is to change.
            if torrent.metainfo == nil { filesMoved(torrent.id, to: location) }
            logger.info(
                "\(torrent.name) (\(torrent.id)): \(move ? "moving its data to" : "looking for its data in") \(location)"
            )
        }
    }

    /// From the engine, on its moving thread, once a torrent's files are in `target` (before the
    /// move's journal goes): kept at once, so that no crash finds the files gone from the folder the
    /// state folder names.
    func filesMoved(_ id: TorrentID, to target: String) {
        registry.withLock { registry in
            guard var torrent = registry.torrents[id] else { return }
            torrent.settings.downloadDirectory = target
            torrent.settings.incompleteDirectory = nil
            do {
                try state.save(savedSettings(of: torrent), hash: torrent.hash)
            } catch {
                logger.error("\(torrent.name) (\(id)): its new folder \(target) cannot be kept: \(error)")
            }
            registry.torrents[id] = torrent
        }
    }
}
