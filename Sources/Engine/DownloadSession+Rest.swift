import TorrentModel

// MARK: Resting

/// What a seed that rests hands to its next session (the engine places one on the same reactor, under
/// the same `HostKey`, when it is needed again): its totals and clocks, so that nothing a front end
/// reads starts again from zero, and where it stood with its trackers, so that they hear from it on
/// their schedule and as the same peer.
struct RestCarry {
    var uploadedBytes: Int64
    var downloadedBytes: Int64
    /// Reactor time, valid on the same reactor.
    var seedingSince: UInt64?
    /// Still subscribed to the DHT: the next session does not look its peers up again.
    var dhtSubscribed: Bool
    /// Trackers know us by it.
    var peerID: PeerID
    /// Where the announcer stood with the trackers (nil: none); the torrent wakes when it is due.
    var trackers: TrackerAnnouncer.Memory?

    /// When the stand-in wakes the torrent by itself (nil: only a peer or a command does).
    var wakeAt: UInt64? { trackers?.wakeAt }
}

extension DownloadSession {
    /// A seed holding thousands of torrents is mostly torrents nobody asks for; each running session
    /// costs kilobytes (its pipeline, choker, meters, picker arrays, store). A seed that had no peer for
    /// `options.restAfterIdleSeconds`, with nothing in flight and nothing that only a session does,
    /// leaves its reactor; the engine keeps a stand-in (`RestingTorrent`) that wakes it when a peer
    /// connects, a command needs it, or its trackers' next announce is due. Trackers are not told (it
    /// is still seeding), and the DHT and local discovery keep announcing it.
    func restIfUnneeded(now: UInt64) {
        guard let deadline = restDeadline, now >= deadline, isAtRest, hasNothingOnlyASessionDoes else {
            return
        }
        var trackerMemory: TrackerAnnouncer.Memory?
        if let trackers {
            // Between announces only, and not for less time than it waited to rest.
            guard
                let memory = trackers.memoryForRest(now: now, margin: deadline - max(lastBusy, tradingSince))
            else { return }
            trackerMemory = memory
        }
        restingTrackers = trackerMemory
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

    /// Nothing in flight, resume data that vouches for every piece, and nothing a stand-in cannot keep
    /// up: a port of its own, web seeds and a seed time limit need a running session (trackers do not:
    /// the stand-in wakes the torrent for its next announce).
    private var hasNothingOnlyASessionDoes: Bool {
        guard listenerFD < 0, options.seedTimeLimitSeconds == nil, webSeedPool == nil else { return false }
        let saved = resumeSavedPieceCount == verified.count && resumeSavesInFlight == 0 && !resumeSaveOutdated
        return saved && writing.isEmpty && assembling.isEmpty && hashesInFlight == 0 && recheck == nil
            && !findingProgress && (store?.operationsInFlight ?? 0) == 0
            && !uploadLeases.contains(where: { $0 != nil })
    }

    /// What the next session takes over.
    var restCarry: RestCarry {
        RestCarry(
            uploadedBytes: uploadedBytes, downloadedBytes: downloadedBytes, seedingSince: seedingSince,
            dhtSubscribed: dhtSubscribed, peerID: localPeerID, trackers: restingTrackers)
    }

    /// Takes over from a session that rested: before the reactor hosts this one.
    func resume(from carry: RestCarry) {
        uploadedBytes = carry.uploadedBytes
        downloadedBytes = carry.downloadedBytes
        dhtSubscribed = carry.dhtSubscribed
        restedSeedingSince = carry.seedingSince
        localPeerID = carry.peerID
        restedTrackers = carry.trackers
    }
}
