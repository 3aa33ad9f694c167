import Engine
import Metainfo
import Storage
import TransmissionRPC

/// torrent-rename-path: a file or folder of a torrent renamed on disk and in what clients see. The
/// torrent stops in the engine (its files closed, resume data saved), the rename is kept, made on disk
/// with one rename, and the torrent starts again where it was, its resume data still vouching for the
/// renamed files (a rename keeps their sizes and times): nothing is checked again.
extension EngineBackend {
    public func renamePath(inTorrent id: Int, from path: String, to name: String) async throws {
        let rename = PathRename(path: path, name: name)
        let (torrent, paths) = try registry.withLock { registry throws -> (DaemonTorrent, [[String]]) in
            guard let torrent = registry.torrents.values.first(where: { $0.id.value == id }) else {
                throw RPCFailure("no torrent \(id)")
            }
            guard torrent.metainfo != nil else {
                throw RPCFailure("the files of \(torrent.name) are not known until its metadata arrives")
            }
            // Each is kept and replayed at every start: a client renaming back and forth forever
            // would grow the state file and the start without end.
            guard (torrent.settings.renames?.count ?? 0) < Self.maximumRenames else {
                throw RPCFailure("\(torrent.name) was renamed \(Self.maximumRenames) times; no more renames")
            }
            return (torrent, try rename.applied(to: torrent.filePaths))
        }
        guard paths != torrent.filePaths else { return }
        let engineID = torrent.id
        if engine.snapshot(engineID)?.activity == .moving {
            throw RPCFailure("the files of \(torrent.name) are being moved; try again once they are")
        }
        let wasRunning = engine.snapshot(engineID)?.isLive == true
        await stopInEngine(engineID)
        let folder = engine.snapshot(engineID)?.downloadDirectory ?? torrent.settings.downloadDirectory
        try registry.withLock { registry throws in
            guard var current = registry.torrents[engineID] else { throw RPCFailure("no torrent \(id)") }
            let before = current
            func undo(_ error: any Error) -> any Error {
                try? state.save(savedSettings(of: before), hash: before.hash)
                if wasRunning { try? engine.resume(engineID) }
                return error is RPCFailure ? error : RPCFailure("cannot rename \(path) to \(name): \(error)")
            }
            let paths: [[String]]
            do {
                // Again: another rename may have come first while this one waited.
                paths = try rename.applied(to: current.filePaths)
                // Kept first: a kill between here and the rename is finished at the next start.
                current.settings.renames = (current.settings.renames ?? []) + [rename]
                try state.save(savedSettings(of: current), hash: current.hash)
            } catch {
                throw undo(error)
            }
            do {
                // Refused while the torrent still runs (it did not stop in time) or moves its files.
                try engine.setFilePaths(engineID, paths)
            } catch {
                throw undo(error)
            }
            do {
                _ = try FileMove(files: [], from: folder, to: folder).rename(rename.components, to: name)
            } catch {
                try? engine.setFilePaths(engineID, before.renamedPaths)
                throw undo(error)
            }
            current.renamedPaths = paths
            registry.torrents[engineID] = current
            if wasRunning { try? engine.resume(engineID) }
            logger.info("\(torrent.name) (\(engineID)): \(path) renamed \(name)")
        }
    }

    static let maximumRenames = 1_000

    /// The paths a kept torrent's renames lead to (nil: none), after finishing on disk the last
    /// rename, which a kill may have cut between keeping it and making it (the others were made
    /// before the next was asked for). Nothing at the old path: it was made, or there was nothing.
    func finishRenames(of metainfo: Metainfo, settings: StoredTorrent) -> [[String]]? {
        guard let renames = settings.renames, let last = renames.last else { return nil }
        let folder = settings.incompleteDirectory ?? settings.downloadDirectory
        do {
            if try FileMove(files: [], from: folder, to: folder).rename(last.components, to: last.name) {
                logger.info("\(metainfo.name): finished renaming \(last.path) to \(last.name)")
            }
        } catch {
            logger.warning("\(metainfo.name): cannot finish renaming \(last.path) to \(last.name): \(error)")
        }
        return PathRename.paths(metainfo.files.map(\.path), after: renames)
    }
}
