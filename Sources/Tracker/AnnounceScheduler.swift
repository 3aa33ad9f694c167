import TorrentModel

/// When to announce to one tracker, and with which event (BEP 3): `started` first, regular announces
/// every `interval` (never sooner than `min interval`), `completed` once when the download finishes,
/// `stopped` at shutdown, and exponential back-off while the tracker fails.
///
/// The scheduler only decides; the caller fills in the byte counts, sends the announce over HTTP or UDP
/// and reports the outcome with ``announceSucceeded(_:now:)`` or ``announceFailed(now:)``.
///
/// Invariants:
/// - At most one announce is in flight (`inFlight`); ``poll(now:)`` hands out no other until its outcome
///   is reported.
/// - No announce is handed out before `started` has succeeded except `started` itself; `completed` is
///   handed out only after that, at most once successfully, and never if the torrent was complete when
///   the scheduler started.
/// - `stopped` is handed out only if `started` succeeded, and at most once: whatever its outcome, the
///   scheduler is then `.stopped` and does nothing more.
/// - Regular announces are at least `max(interval, min interval)` apart; after `n` consecutive failures
///   the next attempt waits `min(retryBaseSeconds × 2^(n-1), retryMaxSeconds)`.
public struct AnnounceScheduler: Sendable {
    /// Timing when the tracker has not said otherwise.
    public struct Options: Hashable, Sendable {
        /// The first retry after a failure; doubled for each further consecutive failure.
        public var retryBaseSeconds: UInt64
        /// The longest wait between retries.
        public var retryMaxSeconds: UInt64
        /// The shortest gap between a successful announce and one the user asks for, when the tracker
        /// gave no `min interval`.
        public var defaultMinimumIntervalSeconds: UInt64

        /// 30 s doubling up to one hour; one minute between requested announces.
        public init(
            retryBaseSeconds: UInt64 = 30, retryMaxSeconds: UInt64 = 3600,
            defaultMinimumIntervalSeconds: UInt64 = 60
        ) {
            self.retryBaseSeconds = max(1, retryBaseSeconds)
            self.retryMaxSeconds = max(self.retryBaseSeconds, retryMaxSeconds)
            self.defaultMinimumIntervalSeconds = defaultMinimumIntervalSeconds
        }
    }

    /// Where the scheduler is in a torrent's life with this tracker.
    public enum Phase: Hashable, Sendable {
        case notStarted
        case running
        /// Shutdown requested; `stopped` still to be sent (or its outcome awaited).
        case stopping
        case stopped
    }

    /// What the caller should do now.
    public enum Decision: Hashable, Sendable {
        /// Announce now with this event; report the outcome.
        case announce(AnnounceEvent)
        /// Nothing before this instant.
        case waitUntil(Instant)
        /// An announce is in flight; report its outcome first.
        case awaitingOutcome
        /// Not started, or stopped: nothing to do.
        case idle
    }

    /// The timing this scheduler was made with.
    public let options: Options
    /// Where the session is; see ``Phase``.
    public private(set) var phase = Phase.notStarted
    /// The event of the announce in flight, if any.
    public private(set) var inFlight: AnnounceEvent?
    /// Failures since the last success.
    public private(set) var consecutiveFailures = 0
    /// The tracker's `tracker id`, to send back with every announce.
    public private(set) var trackerID: [UInt8]?
    /// Whether `completed` has been sent (or need never be, because we started complete).
    public private(set) var completedSettled = false
    private var startedAcknowledged = false
    private var completedPending = false
    /// When the next announce is due (while running, and none is in flight).
    public private(set) var nextAnnounceAt = Instant.zero
    private var lastSuccessAt: Instant?
    private var minimumIntervalSeconds: UInt64?

    /// A scheduler that does nothing until ``start(now:isComplete:)``.
    public init(options: Options = Options()) { self.options = options }

    /// Begins the session: `started` is due at once. `isComplete` (we are a seed from the start) means
    /// `completed` will never be sent, as BEP 3 asks.
    public mutating func start(now: Instant, isComplete: Bool) {
        guard phase == .notStarted else { return }
        phase = .running
        completedSettled = isComplete
        nextAnnounceAt = now
    }

    /// What to do at `now`. Handing out an announce marks it in flight.
    public mutating func poll(now: Instant) -> Decision {
        switch phase {
        case .notStarted, .stopped:
            return .idle
        case .stopping:
            if inFlight != nil { return .awaitingOutcome }
            guard startedAcknowledged else {
                // The tracker never counted us in, so there is nothing to take back.
                phase = .stopped
                return .idle
            }
            inFlight = .stopped
            return .announce(.stopped)
        case .running:
            if inFlight != nil { return .awaitingOutcome }
            guard now >= nextAnnounceAt else { return .waitUntil(nextAnnounceAt) }
            let event: AnnounceEvent = !startedAcknowledged ? .started : completedPending ? .completed : .none
            inFlight = event
            return .announce(event)
        }
    }

    /// The announce in flight succeeded with `response`.
    public mutating func announceSucceeded(_ response: AnnounceResponse, now: Instant) {
        guard let event = inFlight else { return }
        inFlight = nil
        consecutiveFailures = 0
        lastSuccessAt = now
        if let id = response.trackerID { trackerID = id }
        switch event {
        case .stopped:
            phase = .stopped
            return
        case .started: startedAcknowledged = true
        case .completed:
            completedPending = false
            completedSettled = true
        case .none: break
        }
        minimumIntervalSeconds = response.minimumIntervalSeconds.map { UInt64(max(0, $0)) }
        let intervalSeconds = max(UInt64(max(0, response.intervalSeconds)), minimumIntervalSeconds ?? 0)
        // A download that finished while `started` was in flight reports `completed` straight away.
        nextAnnounceAt = completedPending ? now : now.adding(seconds: intervalSeconds)
    }

    /// The announce in flight failed (tracker failure, timeout, transport error).
    public mutating func announceFailed(now: Instant) {
        guard let event = inFlight else { return }
        inFlight = nil
        if event == .stopped {
            // Shutdown must not wait on a failing tracker: `stopped` is best effort.
            phase = .stopped
            return
        }
        consecutiveFailures += 1
        let shift = UInt64(min(consecutiveFailures - 1, 32))
        let (scaled, overflow) = options.retryBaseSeconds.multipliedReportingOverflow(by: 1 << shift)
        nextAnnounceAt = now.adding(
            seconds: overflow ? options.retryMaxSeconds : min(scaled, options.retryMaxSeconds))
    }

    /// The download finished: `completed` becomes due at once (unless the tracker is failing, when the
    /// back-off still applies), or after `started` if that has not succeeded yet.
    public mutating func downloadCompleted(now: Instant) {
        guard phase == .running, !completedSettled, !completedPending else { return }
        completedPending = true
        if inFlight == nil && consecutiveFailures == 0 && startedAcknowledged { nextAnnounceAt = now }
    }

    /// The user or the engine wants more peers: announce as soon as `min interval` allows.
    public mutating func requestAnnounce(now: Instant) {
        guard phase == .running, startedAcknowledged, consecutiveFailures == 0 else { return }
        let gap = minimumIntervalSeconds ?? options.defaultMinimumIntervalSeconds
        let earliest = max(now, lastSuccessAt.map { $0.adding(seconds: gap) } ?? now)
        nextAnnounceAt = min(nextAnnounceAt, earliest)
    }

    /// A client asked to announce now (a manual reannounce): due at once, whether or not the tracker
    /// is failing, but never sooner after the last success than the tracker's own `min interval`.
    /// Unlike ``requestAnnounce(now:)`` no default gap applies: the caller limits how often it asks.
    public mutating func announceNow(now: Instant) {
        guard phase == .running else { return }
        let gap = startedAcknowledged ? minimumIntervalSeconds ?? 0 : 0
        nextAnnounceAt = min(nextAnnounceAt, max(now, lastSuccessAt.map { $0.adding(seconds: gap) } ?? now))
    }

    /// Shutdown: `stopped` becomes due at once (after any announce in flight), if the tracker ever
    /// acknowledged `started`.
    public mutating func stop() {
        switch phase {
        case .notStarted: phase = .stopped
        case .running: phase = .stopping
        case .stopping, .stopped: break
        }
    }
}
