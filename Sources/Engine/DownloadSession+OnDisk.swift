import Hashing
import Metainfo
import Storage
import TorrentModel

// What is on disk: finding it at start (off the reactor), checking it in the reactor's turn, and
// saving resume data (off the reactor) only when it would say something new.
extension DownloadSession {
    /// The memory a check of this torrent keeps busy: its pieces in flight.
    var checkCostBytes: Int { checkPiecesInFlight * metainfo.pieceLength }

    /// Sixteen pieces in flight let the hashers take them together for `SHA1Lanes` where it runs.
    var checkPiecesInFlight: Int { max(2, min(SHA1Lanes.isAvailable ? 16 : 8, pieceSlotCount / 2)) }

    /// The reactor offers a turn to check the data on disk; false: not waiting for one (declined).
    /// A torrent that takes it holds it until its check ends (`releaseCheckTurn`).
    func beginCheck(now: UInt64, costBytes: Int) -> Bool {
        guard !holdsCheckTurn, case .some(let pieces) = pendingCheck else { return false }
        holdsCheckTurn = true
        checkTurnCostBytes = costBytes
        pendingCheck = nil
        guard lifecycle.stage == .checking, !lifecycle.stopRequestedWhileChecking else {
            releaseCheckTurn()
            return true
        }
        let recheck: Recheck
        do {
            recheck = try Recheck(
                metainfo: metainfo, layout: diskLayout, downloadDirectory: options.downloadDirectory,
                ring: ring,
                pool: pieceBuffers, hashPool: hashers, pieces: pieces, maxPiecesInFlight: checkPiecesInFlight,
                tenant: tenant)
        } catch {
            releaseCheckTurn()
            fail(.storage(error))
            return true
        }
        self.recheck = recheck
        var events: [RecheckEvent] = []
        recheck.start(into: &events)
        checkProgressed(events, now: now)
        reactor.touch(tenant)
        return true
    }

    func releaseCheckTurn() {
        guard holdsCheckTurn else { return }
        holdsCheckTurn = false
        reactor.checkEnded(costBytes: checkTurnCostBytes)
    }

    /// A download that cannot write (a read-only file system, no permission) stops before asking anyone
    /// for anything, naming the folder; seeding what is complete needs no write, so only downloads ask.
    func downloadFolderIsWritable() -> Bool {
        do {
            try store.requireWritableFolder()
            return true
        } catch {
            fail(.storage(error))
            return false
        }
    }

    /// Once a second while downloading: a file being written that someone removed or replaced (by a
    /// directory, a symbolic link) stops the torrent, instead of writes going on into a file no path
    /// reaches and the download "completing" without it. The store's flush looks once more at the end.
    func checkFilesInPlace(now: UInt64) {
        guard now - lastFilesInPlaceCheckNanoseconds >= 1_000_000_000 else { return }
        lastFilesInPlaceCheckNanoseconds = now
        if let error = store.findReplacedFile() {
            forgetPiecesOfReplacedFile(error)
            fail(.storage(error))
        }
    }

    /// A file replaced under the torrent took the pieces written to it along: they are verified no more,
    /// and resume data is saved again at once, since a save made after the replacement may describe
    /// the replacing file, and the next start would trust it. Every file replaced goes so, not only
    /// the one the error names: a save vouching for another would describe that one's replacement.
    func forgetPiecesOfReplacedFile(_ error: StorageError) {
        guard case .replacedWhileWriting = error.reason else { return }
        var replaced = Set(store.replacedFiles())
        if let named = diskLayout.files.firstIndex(where: { $0.path.joined(separator: "/") == error.path }) {
            replaced.insert(named)
        }
        guard !replaced.isEmpty else { return }
        for index in replaced {
            for piece in metainfo.layout.pieceRange(ofFile: index) { verified.remove(PieceIndex(piece)) }
        }
        // Whatever was saved no longer stands; a save in flight might land after a new one, so the new
        // one waits for it.
        resumeSavedPieceCount = nil
        resumeSavingPieceCount = nil
        if resumeSavesInFlight > 0 {
            resumeSaveOutdated = true
        } else {
            saveResumeData()
        }
    }

    /// Finds out, off the reactor, what the download folder and resume data hold; the torrent is
    /// checking meanwhile (`progressFound` goes on).
    func findProgress() {
        let (layout, infoHash) = (diskLayout, metainfo.wireInfoHash)
        let (directory, path, tenant) = (options.downloadDirectory, resumePath, tenant)
        findingProgress = true
        reactor.runChore {
            ProgressOnDisk.find(
                layout: layout, infoHash: infoHash, downloadDirectory: directory, resumePath: path)
        } then: { reactor, found in
            reactor.torrent(at: tenant)?.progressFound(found)
        }
    }

    /// On the reactor: what `findProgress` found. Trusts what resume data vouches for, then checks the
    /// rest in the reactor's turn, or trades.
    func progressFound(_ found: ProgressOnDisk) {
        findingProgress = false
        let now = nowNanoseconds
        defer { reactor.touch(tenant) }
        guard lifecycle.stage == .checking, !lifecycle.stopRequestedWhileChecking else {
            checkProgressed([], now: now)
            return
        }
        log(found.report)
        noteStart(.filesKnown, now: now)
        verified = found.trusted
        if found.resumeSaysTrusted { resumeSavedPieceCount = verified.count }
        adoptSelection(rememberedPriorities: found.filePriorities)
        if case .some(let pieces) = found.piecesToCheck {
            pendingCheck = .some(pieces)
            reactor.queueCheck(tenant, costBytes: checkCostBytes)
        } else {
            advance(.checkFinished(isComplete: hasEverythingWanted), now: now)
        }
    }

    /// The check moved on: count its bytes; when it is done, run; when it was stopped and has nothing
    /// left in flight, end (nothing is known yet, so nothing is saved).
    func checkProgressed(_ events: [RecheckEvent], now: UInt64) {
        guard lifecycle.stage == .checking else { return }
        guard let recheck else {
            // Stopped while finding progress or waiting for its turn: nothing was started.
            if lifecycle.stopRequestedWhileChecking && pendingCheck == nil && !findingProgress {
                log("check interrupted")
                advance(.checkDrained, now: now)
            }
            return
        }
        for event in events {
            switch event {
            case .pieceChecked(let piece, _):
                checkedBytes += Int64(geometry.length(of: piece))
            case .finished(let result):
                result.forEach { verified.insert($0) }
                log("check found \(verified.count) of \(metainfo.pieceCount) pieces on disk")
                self.recheck = nil
                releaseCheckTurn()
                // A seed assembles no piece: the check's piece memory goes back at once.
                if hasEverythingWanted && hashesInFlight == 0 && assembling.isEmpty {
                    pieceBufferStorage = nil
                }
                advance(.checkFinished(isComplete: hasEverythingWanted), now: now)
                return
            }
        }
        if lifecycle.stopRequestedWhileChecking && !recheck.hasWorkInFlight {
            log("check interrupted")
            releaseCheckTurn()
            advance(.checkDrained, now: now)
        }
    }

    /// Saves resume data off the reactor's thread, unless what is on disk (or on its way) already says
    /// as much. The torrent does not leave its reactor before the save is done.
    func saveResumeData() {
        guard resumeSavedPieceCount != verified.count, resumeSavingPieceCount != verified.count else {
            return
        }
        let (infoHash, verified, layout) = (metainfo.wireInfoHash, self.verified, diskLayout)
        let priorities = filePriorities.values
        let (directory, path, tenant) = (options.downloadDirectory, resumePath, tenant)
        resumeSavingPieceCount = verified.count
        resumeSavesInFlight += 1
        reactor.runChore {
            () -> Result<Int, StorageError> in
            // Synced here: the pieces vouched for were written before this, maybe not yet flushed.
            let current =
                (try? ResumeData.currentFileStatuses(
                    layout: layout, downloadDirectory: directory, syncingData: true)) ?? []
            do throws(StorageError) {
                try ResumeData(
                    infoHash: infoHash, verified: verified, files: current, filePriorities: priorities
                ).save(to: path)
                return .success(verified.count)
            } catch {
                return .failure(error)
            }
        } then: { reactor, result in
            reactor.torrent(at: tenant)?.resumeSaveEnded(result)
        }
    }

    /// On the reactor: a save asked for by `saveResumeData` is done.
    func resumeSaveEnded(_ result: Result<Int, StorageError>) {
        resumeSavesInFlight -= 1
        switch result {
        case .success(let count):
            resumeSavedPieceCount = count
        case .failure(let error):
            log("could not save resume data: \(error)")
            // Tried again at the next occasion.
            resumeSavingPieceCount = nil
        }
        if resumeSaveOutdated && resumeSavesInFlight == 0 {
            resumeSaveOutdated = false
            (resumeSavedPieceCount, resumeSavingPieceCount) = (nil, nil)
            saveResumeData()
        }
        reactor.touch(tenant)
    }
}
