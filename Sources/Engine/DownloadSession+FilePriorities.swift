import Metainfo
import Storage
import Swarm
import TorrentModel

/// File selection, per-file priorities, sequential order and the streaming window, on a running torrent.
///
/// The user's choice is per file (`FilePriorities`); the picker's is per piece: a piece is as wanted
/// as the most wanted file it touches, and one touching only skipped files is never asked for. The
/// torrent is complete once every wanted piece is verified; it then seeds what it has (its bitfield
/// says exactly that). The streaming window raises the pieces from the first missing wanted one on
/// above everything else, and moves on as they are verified.
extension DownloadSession {
    /// Whether every wanted piece is verified (every piece, without a selection).
    var hasEverythingWanted: Bool {
        guard let wantedPieces else { return verified.isComplete }
        return wantedPieces.isSubset(of: verified)
    }

    /// Once resume data is read: the options' selection if they give one, else the one remembered.
    func adoptSelection(rememberedPriorities: [FilePriority]?) {
        let chosen = options.filePriorities ?? rememberedPriorities
        if let chosen, chosen.count == metainfo.files.count {
            select(FilePriorities(chosen))
        }
        // Resume data that does not say what is chosen now is saved again at the next chance.
        if rememberedPriorities != filePriorities.values { forgetSavedResume() }
    }

    /// New priorities for the torrent's files (`Engine.setFilePriorities`): newly wanted pieces are
    /// fetched (a seed goes back to downloading), newly skipped ones are no longer asked for; nothing
    /// verified is dropped.
    func setFilePriorities(_ values: [FilePriority]) {
        guard values.count == metainfo.files.count, values != filePriorities.values else { return }
        options.filePriorities = values
        select(FilePriorities(values))
        forgetSavedResume()
        do {
            try store?.createEmptyFiles()
        } catch {
            log("could not create an empty file: \(error)")
        }
        let now = nowNanoseconds
        if trading {
            actions.removeAll(keepingCapacity: true)
            applySelectionToPicker()
            perform(actions)
            if lifecycle.stage == .seeding && !hasEverythingWanted { resumeDownloading(now: now) }
            // Peers already unchoking us have new pieces to be asked for.
            refillAllRequests(now: now)
        }
        reactor.touch(tenant)
    }

    /// The picker's priorities, order and window from the selection; appends interest changes to
    /// `actions`. Costs O(pieces × peers) at worst, once per selection change.
    func applySelectionToPicker() {
        let base = filePriorities.piecePriorities(in: metainfo.layout)
        var changes: [PriorityChange] = []
        let windowPieces = streamWindowPieces
        if windowPieces > 0 {
            var window = streamingWindow ?? StreamingWindow(lengthPieces: windowPieces, base: base)
            if streamingWindow == nil {
                window.advance(have: pipeline.picker.have, into: &changes)
            } else {
                window.setBase(base, have: pipeline.picker.have, into: &changes)
            }
            streamingWindow = window
        }
        for (index, priority) in base.enumerated() {
            let piece = PieceIndex(index)
            pipeline.setPriority(streamingWindow?.priority(of: piece) ?? priority, of: piece, into: &actions)
        }
        if pipeline.picker.isSequential != options.sequential { pipeline.setSequential(options.sequential) }
    }

    /// A piece was verified and written: the streaming window moves past it. Appends to `actions`.
    func advanceStreamingWindow() {
        guard var window = streamingWindow else { return }
        var changes: [PriorityChange] = []
        window.advance(have: pipeline.picker.have, into: &changes)
        streamingWindow = window
        for change in changes { pipeline.setPriority(change.priority, of: change.piece, into: &actions) }
    }

    /// Bytes of the wanted pieces, and of those verified (for progress: the selection is the whole).
    func wantedProgressBytes() -> (wanted: Int64, verified: Int64) {
        var wanted: Int64 = 0
        var done: Int64 = 0
        let wantedPieces = self.wantedPieces ?? PieceSet(pieceCount: metainfo.pieceCount, full: true)
        wantedPieces.forEach { piece in
            let length = Int64(geometry.length(of: piece))
            wanted += length
            if verified.contains(piece) { done += length }
        }
        return (wanted, done)
    }

    private var streamWindowPieces: Int {
        guard options.streamWindowBytes > 0 else { return 0 }
        return max(1, (options.streamWindowBytes + metainfo.pieceLength - 1) / metainfo.pieceLength)
    }

    private func select(_ priorities: FilePriorities) {
        filePriorities = priorities
        let wanted = priorities.wantedPieces(in: metainfo.layout)
        wantedPieces = wanted.isComplete ? nil : wanted
        store?.setWantedFiles(priorities.wantedFiles(in: metainfo.layout))
    }

    private func forgetSavedResume() {
        resumeSavedPieceCount = nil
        resumeSavingPieceCount = nil
    }

    /// A seed that wants more again: back to downloading, its seeding clock and choker reset.
    private func resumeDownloading(now: UInt64) {
        advance(.moreWanted, now: now)
        completionSaved = false
        seedingSince = nil
        // The completion's flush may still be in flight: only a finished one is forgotten.
        if flushed { (flushRequested, flushed) = (false, false) }
        chokeActions.removeAll(keepingCapacity: true)
        choker.setSeeding(false, at: Instant(nanoseconds: now), into: &chokeActions)
        performChokes()
    }
}
