import TorrentModel

/// The stages of a torrent's life and the rules that move it between them: events (and time) in, the
/// new stage out. The engine performs what each stage means (start the check, connect, save resume
/// data, shut sockets); nothing here does I/O, so every transition is tested on its own.
///
/// A torrent checks the data it has (when there is any to check), then downloads; once every piece is
/// verified and written it seeds, or ends. Ending has steps, each bounded in time so a stuck peer or
/// disk cannot hold the torrent forever: verified pieces being written land (30 s), blocks already
/// queued for peers are sent (2 s), trackers are told we leave (their own bound), and the operations
/// still in flight complete. An error skips straight to telling the trackers.
///
/// Invariants: `gone` is final; a stop asked for during the check takes effect once the check has
/// nothing in flight (its buffers are still being written to until then); each ending records why.
public struct TorrentLifecycle: Sendable, Equatable {
    /// Why a torrent ended.
    public enum Ending: Sendable, Equatable {
        /// Every piece is verified and on disk (and seeding, if asked, reached its limit).
        case completed
        /// Stopped on request (a pause, Ctrl-C, shutdown).
        case interrupted
        /// An error stopped it (the engine keeps which).
        case failed
        /// A seed nobody needed left its reactor to rest; the engine keeps it seeding and starts it
        /// again when a peer or a command needs it. Not an end: nothing is told to trackers or the DHT.
        case rested
    }

    public enum Stage: Sendable, Equatable {
        /// Not started.
        case idle
        /// Reading and hashing the data already on disk.
        case checking
        case downloading
        case seeding
        /// Verified pieces being written land, until the deadline.
        case finishingWrites(Ending, deadline: Instant)
        /// Blocks already queued for peers are sent, until the deadline.
        case drainingSends(Ending, deadline: Instant)
        /// Trackers are told we leave.
        case stoppingTrackers(Ending)
        /// Sockets are shut; waiting for every operation in flight.
        case closing(Ending)
        /// Over.
        case gone(Ending)
    }

    public enum Event: Sendable, Equatable {
        /// The torrent starts: with data on disk to check, or without (then: whether it is complete).
        case started(needsCheck: Bool, isComplete: Bool)
        /// The check is done.
        case checkFinished(isComplete: Bool)
        /// A check that was stopped has nothing left in flight.
        case checkDrained
        /// Stop (pause, shutdown).
        case stopRequested
        /// Every piece is verified and written.
        case allPiecesWritten
        /// A seed ratio or time limit was reached.
        case seedLimitReached
        /// A seed with nothing to do leaves its reactor to rest (see `Ending.rested`).
        case restRequested
        /// Pieces not verified are wanted again (the file selection grew while seeding).
        case moreWanted
        /// No write is in flight any more and the files are flushed.
        case writesLanded
        /// Nothing queued for peers is left to send.
        case sendsDrained
        /// Every tracker was told, or gave up.
        case trackersDone
        /// Nothing of the torrent is in flight any more.
        case drained
        /// An error that ends the torrent.
        case failed
        /// Time passed (deadlines).
        case tick
    }

    /// How long verified pieces may take to land when ending.
    public static let writesDeadline = Duration.seconds(30)
    /// How long queued blocks may take to go out when ending.
    public static let sendsDeadline = Duration.seconds(2)

    public private(set) var stage: Stage = .idle
    /// Keep uploading once complete.
    public let seedsWhenComplete: Bool
    /// A stop arrived while checking: it ends the torrent once the check drains.
    public private(set) var stopRequestedWhileChecking = false

    public init(seedsWhenComplete: Bool) {
        self.seedsWhenComplete = seedsWhenComplete
    }

    /// How the torrent ended, once it has.
    public var ending: Ending? {
        if case .gone(let ending) = stage { return ending }
        return nil
    }

    /// Whether it is leaving after an error or a completed drain (no new work should start).
    public var isEnding: Bool {
        switch stage {
        case .stoppingTrackers, .closing, .gone: true
        default: false
        }
    }

    /// Applies `event` at `now`; returns the new stage when it changed (nil: the event changes nothing
    /// in this stage).
    @discardableResult
    public mutating func handle(_ event: Event, now: Instant) -> Stage? {
        guard let next = nextStage(after: event, now: now), next != stage else { return nil }
        stage = next
        return next
    }

    private mutating func nextStage(after event: Event, now: Instant) -> Stage? {
        if event == .failed {
            switch stage {
            case .stoppingTrackers, .closing, .gone: return nil
            default: return .stoppingTrackers(.failed)
            }
        }
        switch (stage, event) {
        case (.idle, .started(let needsCheck, let isComplete)):
            return needsCheck ? .checking : running(isComplete: isComplete, now: now)
        case (.idle, .stopRequested):
            return .gone(.interrupted)
        case (.checking, .stopRequested):
            stopRequestedWhileChecking = true
            return nil
        case (.checking, .checkDrained) where stopRequestedWhileChecking:
            return .closing(.interrupted)
        case (.checking, .checkFinished(let isComplete)):
            return stopRequestedWhileChecking
                ? .closing(.interrupted) : running(isComplete: isComplete, now: now)
        case (.downloading, .allPiecesWritten):
            return seedsWhenComplete
                ? .seeding : .finishingWrites(.completed, deadline: now.advanced(by: Self.writesDeadline))
        case (.downloading, .stopRequested), (.seeding, .stopRequested):
            return .finishingWrites(.interrupted, deadline: now.advanced(by: Self.writesDeadline))
        case (.seeding, .moreWanted):
            return .downloading
        case (.seeding, .seedLimitReached):
            return .finishingWrites(.completed, deadline: now.advanced(by: Self.writesDeadline))
        case (.seeding, .restRequested):
            // A seed writes nothing and, with no peer, sends nothing: only what is in flight remains.
            return .closing(.rested)
        case (.finishingWrites(let ending, _), .writesLanded):
            return .drainingSends(ending, deadline: now.advanced(by: Self.sendsDeadline))
        case (.finishingWrites(let ending, let deadline), .tick) where now >= deadline:
            return .drainingSends(ending, deadline: now.advanced(by: Self.sendsDeadline))
        case (.drainingSends(let ending, _), .sendsDrained):
            return .stoppingTrackers(ending)
        case (.drainingSends(let ending, let deadline), .tick) where now >= deadline:
            return .stoppingTrackers(ending)
        case (.stoppingTrackers(let ending), .trackersDone):
            return .closing(ending)
        case (.closing(let ending), .drained):
            return .gone(ending)
        default:
            return nil
        }
    }

    /// Where a torrent whose data is known goes: a complete one that is not to seed has nothing to do
    /// (it never announced, so it tells no tracker).
    private func running(isComplete: Bool, now: Instant) -> Stage {
        guard isComplete else { return .downloading }
        return seedsWhenComplete ? .seeding : .closing(.completed)
    }
}
