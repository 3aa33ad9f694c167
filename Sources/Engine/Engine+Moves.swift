import Glibc
import Locking
import Metainfo
import Storage
import TorrentModel
import URing

// Moving a torrent's files to another folder: on request (`move`) and, for a torrent downloading into
// an incomplete folder, once every wanted piece is verified (`DownloadOptions.completedDirectory`).
//
// The session stops first (its writes land and its resume data is saved), the files move on a thread of
// their own (`FileMove`: renames on one file system, copies through a ring across two), and the torrent
// starts again from its new folder if it was running. A journal beside its resume data makes the move
// finish at the next start if the process dies in the middle of it.
extension Engine {
    /// A move decided, waiting for the session to stop or running.
    struct PendingMove {
        let journal: MoveJournal
        /// False when the files are already in the new folder (put there by someone else): only the
        /// torrent's folder changes.
        var movesFiles = true
        /// Start the torrent again once its files are moved (it was running).
        var restart: Bool
        /// What the torrent shows once moved, when it does not start again.
        var activityAfter: TorrentActivity
        /// A finished download's end, told once its files are in place (a front end that exits at the
        /// end of its download must not exit before the move).
        var heldEnd: DownloadOutcome?
    }

    /// Moves the torrent's files to `directory`, its download folder from then on. A running torrent
    /// stops, moves and starts again (from its resume data: nothing is checked again); a paused or
    /// finished one moves and stays as it was. A magnet link's torrent without metadata has no files
    /// yet: the folder just changes. With `movingFiles` false the files are taken to be in `directory`
    /// already (Transmission's set-location without `move`): the torrent only looks for them there.
    public func move(_ id: TorrentID, to directory: String, movingFiles: Bool = true) throws(EngineError) {
        let stop = try state.withLock { (state) throws(EngineError) -> (reactor: Int, run: Int)?? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            guard record.move == nil else { throw .moving(id) }
            guard directory != record.options.downloadDirectory else { return .none }
            guard record.metainfo != nil else {
                record.options.downloadDirectory = directory
                state.records[id] = record
                return .none
            }
            let running = record.live && record.activity != .paused
            record.move = PendingMove(
                journal: MoveJournal(source: record.options.downloadDirectory, target: directory),
                movesFiles: movingFiles, restart: running, activityAfter: record.activity, heldEnd: nil)
            state.records[id] = record
            return record.live ? (record.reactor, record.run) : .some(nil)
        }
        switch stop {
        case .some(.some(let (reactor, run))): stopForMove(id, run: run, reactor: reactor)
        case .some(.none): runMove(id)
        case .none: break
        }
    }

    /// A front end's `add` or `resume` found the journal of a move that a crash interrupted: the move
    /// finishes before the torrent starts. False when there is none.
    func finishInterruptedMove(_ id: TorrentID) -> Bool {
        guard
            let (resumePath, folder, start) = state.withLock({ state -> (String, String, Bool)? in
                guard let record = state.records[id], let metainfo = record.metainfo, record.move == nil
                else { return nil }
                return (
                    record.options.resumeDataPath(infoHash: metainfo.wireInfoHash),
                    record.options.downloadDirectory, record.activity != .paused
                )
            })
        else { return false }
        let journal: MoveJournal?
        do {
            journal = try MoveJournal.load(from: MoveJournal.path(forResumeData: resumePath))
        } catch {
            failMove(id, error)
            return true
        }
        guard let journal else { return false }
        // A journal is written by a move of this torrent's folder (it is the source, or the target when
        // the process died after the move was recorded and before the journal went). One naming other
        // folders was put there by someone else, and would move the torrent's paths between them.
        guard journal.source == folder || journal.target == folder else {
            log(
                "\(name(of: id)): ignoring \(MoveJournal.path(forResumeData: resumePath)): neither folder it "
                    + "names is the torrent's, \(folder)")
            return false
        }
        log("\(name(of: id)): finishing the move to \(journal.target) that was interrupted")
        state.withLock { state in
            guard var record = state.records[id] else { return }
            record.options.downloadDirectory = journal.source
            record.move = PendingMove(journal: journal, restart: start, activityAfter: .paused, heldEnd: nil)
            state.records[id] = record
        }
        runMove(id)
        return true
    }

    /// On the reactor, from a status report: a torrent downloading into an incomplete folder has every
    /// wanted piece; its files go to their completed folder.
    func moveWhenComplete(_ record: inout Record) -> Bool {
        guard record.move == nil, record.metainfo != nil, !record.removing,
            let completed = record.options.completedDirectory,
            completed != record.options.downloadDirectory
        else { return false }
        record.move = PendingMove(
            journal: MoveJournal(source: record.options.downloadDirectory, target: completed),
            restart: record.activity != .paused, activityAfter: .finished, heldEnd: nil)
        return true
    }

    func stopForMove(_ id: TorrentID, run: Int, reactor: Int) {
        inboxes[reactor].submit { reactor in
            reactor.tenant(with: HostKey(id: id, run: run))?.stop()
        }
    }

    /// From `ended`: the session of a torrent with a move decided has stopped, or a download into an
    /// incomplete folder has finished. Returns true when a move now runs (the end is told after it).
    func moveAfterEnd(_ record: inout Record, outcome: Result<DownloadOutcome, DownloadError>) -> Bool {
        guard !record.removing else { return false }
        if case .success(.completed) = outcome, record.move == nil, moveWhenComplete(&record) {
            record.move?.restart = false
            record.move?.heldEnd = .completed
        }
        guard record.move != nil else { return false }
        guard case .success = outcome else {
            // The session failed on its own: the torrent shows that failure and stays where it is.
            record.move = nil
            return false
        }
        record.activity = .moving
        return true
    }

    /// Moves the files on a thread of its own, then settles the torrent.
    func runMove(_ id: TorrentID) {
        guard
            let (metainfo, options, move) = state.withLock({
                state -> (Metainfo, DownloadOptions, PendingMove)? in
                guard var record = state.records[id], let metainfo = record.metainfo, let move = record.move
                else { return nil }
                record.activity = .moving
                state.records[id] = record
                return (metainfo, record.options, move)
            })
        else { return }
        let journal = move.journal
        let resumePath = options.resumeDataPath(infoHash: metainfo.wireInfoHash)
        let journalPath = MoveJournal.path(forResumeData: resumePath)
        // Resume data kept beside the files (the default) goes with them.
        var movedOptions = options
        movedOptions.downloadDirectory = journal.target
        let extras: [FileMove.ExtraFile] =
            options.resumeFolder == nil
            ? [.init(from: resumePath, to: movedOptions.resumeDataPath(infoHash: metainfo.wireInfoHash))] : []
        let onDisk = metainfo.layout.renamed(to: options.filePaths)
        let files = move.movesFiles ? onDisk.files.filter { !$0.isPadding }.map(\.path) : []
        let onMoved = self.onMoved
        let body: @Sendable () -> Void = { [self] in
            let fileMove = FileMove(
                files: files, from: journal.source, to: journal.target, extraFiles: extras)
            do throws(StorageError) {
                try journal.save(to: journalPath)
                try fileMove.run()
                onMoved(id, journal.target)
                MoveJournal.remove(at: journalPath)
                moved(id)
            } catch {
                // Files left in both folders: the journal stays, so resuming the torrent (or its next
                // start) finishes the move rather than finding half its files missing.
                if fileMove.leftFilesSplit {
                    log(
                        "\(name(of: id)): some files could not go back to \(journal.source); resuming the "
                            + "torrent finishes the move to \(journal.target)")
                } else {
                    MoveJournal.remove(at: journalPath)
                }
                failMove(id, error)
            }
        }
        do {
            try moves.start(body)
        } catch {
            failMove(id, StorageError(.move, path: journal.target, reason: .system(error.errno)))
        }
    }

    /// The files are in their new folder: the torrent starts again there, or shows what it was.
    private func moved(_ id: TorrentID) {
        if forgetIfRemoved(id) { return }
        let (restart, end) = state.withLock { state -> (Bool, DownloadOutcome?) in
            guard var record = state.records[id], let move = record.move else { return (false, nil) }
            record.options.downloadDirectory = move.journal.target
            // Where it is now is where it stays: a completed folder no longer applies.
            record.options.completedDirectory = nil
            record.move = nil
            let restart = move.restart && !record.removing && !state.shuttingDown
            record.activity = restart ? .starting : move.activityAfter
            // Live from here: a front end never sees it ended between its move and its restart.
            record.live = restart
            if let end = move.heldEnd { record.ended = .success(end) }
            state.records[id] = record
            return (restart, move.heldEnd)
        }
        log("\(name(of: id)): moved to \(state.withLock { $0.records[id]?.options.downloadDirectory ?? "" })")
        if restart { start(id) }
        if let end { continuation.yield(.ended(id, end, nil)) }
    }

    /// The move failed (and its files were moved back): the torrent stops with the reason.
    private func failMove(_ id: TorrentID, _ error: StorageError) {
        if forgetIfRemoved(id) { return }
        let failure = DownloadError.storage(error)
        let known = state.withLock { state -> Bool in
            guard var record = state.records[id] else { return false }
            record.move = nil
            record.activity = .failed(failure.description)
            record.ended = .failure(failure)
            state.records[id] = record
            return true
        }
        guard known else { return }
        log("\(name(of: id)): stopped: \(failure)")
        continuation.yield(.ended(id, nil, failure))
    }

    /// A torrent removed while its files moved goes once the move has ended.
    private func forgetIfRemoved(_ id: TorrentID) -> Bool {
        let removed = state.withLock { state -> Bool in
            guard let record = state.records[id], record.removing, !record.live else { return false }
            forget(id, in: &state)
            return true
        }
        if removed { continuation.yield(.removed(id)) }
        return removed
    }

    private func name(of id: TorrentID) -> String {
        state.withLock { $0.records[id]?.name } ?? "\(id)"
    }
}

/// The threads moving files, joined at shutdown so that no move is cut short by a clean exit. Those
/// that finished are joined as the next starts: a daemon moves every completed download, and each
/// thread left unjoined keeps its stack mapped.
final class MoveThreads: Sendable {
    private let threads = Lock<[JoinableThread]>([])

    func start(_ body: @escaping @Sendable () -> Void) throws(SyscallError) {
        let thread = try JoinableThread(body)
        let finished = threads.withLock { threads in
            var finished: [JoinableThread] = []
            threads.removeAll { running in
                guard running.hasFinished else { return false }
                finished.append(running)
                return true
            }
            threads.append(thread)
            return finished
        }
        for done in finished { done.join() }
    }

    func joinAll() {
        let all = threads.withLock { threads in
            defer { threads.removeAll() }
            return threads
        }
        for thread in all { thread.join() }
    }
}
