// MARK: Resting

/// What a seed that rests hands to its next session (the engine places one on the same reactor, under
/// the same `HostKey`, when it is needed again): its totals and clocks, so that nothing a front end
/// reads starts again from zero.
struct RestCarry {
    var uploadedBytes: Int64
    var downloadedBytes: Int64
    /// Reactor time, valid on the same reactor.
    var seedingSince: UInt64?
    /// Still subscribed to the DHT: the next session does not look its peers up again.
    var dhtSubscribed: Bool
}

extension DownloadSession {
    /// A seed holding thousands of torrents is mostly torrents nobody asks for; each running session
    /// costs kilobytes (its pipeline, choker, meters, picker arrays, store). A seed that had no peer for
    /// `options.restAfterIdleSeconds`, with nothing in flight and nothing that only a session does,
    /// leaves its reactor; the engine keeps a stand-in (`RestingTorrent`) that wakes it when a peer
    /// connects or a command needs it. Trackers are not told (it is still seeding), and the DHT and local
    /// discovery keep announcing it.
    func restIfUnneeded(now: UInt64) {
        guard let deadline = restDeadline, now >= deadline, isAtRest, hasNothingOnlyASessionDoes else {
            return
        }
        log("resting: no peer for \(options.restAfterIdleSeconds ?? 0) s")
        reportStatus(now: now)
        advance(.restRequested, now: now)
    }

    /// When a seed with no peers since may rest (nil: it may not rest).
    var restDeadline: UInt64? {
        guard let seconds = options.restAfterIdleSeconds, restHandler != nil, lifecycle.stage == .seeding
        else {
            return nil
        }
        return max(lastBusy, tradingSince) + UInt64(max(0, seconds)) * 1_000_000_000
    }

    /// Nothing in flight, resume data that vouches for every piece, and no schedule of its own:
    /// announcing to trackers, a port of its own and a seed time limit need a running session.
    private var hasNothingOnlyASessionDoes: Bool {
        guard trackers == nil, listenerFD < 0, options.seedTimeLimitSeconds == nil, webSeedPool == nil else {
            return false
        }
        let saved = resumeSavedPieceCount == verified.count && resumeSavesInFlight == 0 && !resumeSaveOutdated
        return saved && writing.isEmpty && assembling.isEmpty && hashesInFlight == 0 && recheck == nil
            && !findingProgress && (store?.operationsInFlight ?? 0) == 0
            && !uploadLeases.contains(where: { $0 != nil })
    }

    /// What the next session takes over.
    var restCarry: RestCarry {
        RestCarry(
            uploadedBytes: uploadedBytes, downloadedBytes: downloadedBytes, seedingSince: seedingSince,
            dhtSubscribed: dhtSubscribed)
    }

    /// Takes over from a session that rested: before the reactor hosts this one.
    func resume(from carry: RestCarry) {
        uploadedBytes = carry.uploadedBytes
        downloadedBytes = carry.downloadedBytes
        dhtSubscribed = carry.dhtSubscribed
        restedSeedingSince = carry.seedingSince
    }
}
