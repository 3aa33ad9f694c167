import TransmissionRPC

/// When a seeding torrent that nobody downloads from stops (`seedIdleMode`, `seedIdleLimit`, the
/// session's `idle-seeding-limit`), as Transmission does it: idle time runs from the later of its
/// start and its last transfer, and a stop ends it like a reached ratio (status stopped, not paused).
struct SeedIdleLimit: Sendable, Hashable {
    /// Minutes without traffic before seeding stops.
    let minutes: Int

    /// The limit that applies to a torrent, or nil when none does.
    init?(mode: IdleLimitMode, torrentMinutes: Int, sessionEnabled: Bool, sessionMinutes: Int) {
        switch mode {
        case .global where sessionEnabled: minutes = sessionMinutes
        case .single: minutes = torrentMinutes
        case .global, .unlimited: return nil
        }
        // Transmission treats a limit of 0 as "stop at once"; a negative one is no limit.
        guard minutes >= 0 else { return nil }
    }

    /// Seconds of idling left at `now` (0 once reached) for a torrent that started at `startDate` and
    /// last moved data at `activityDate` (Unix seconds; 0 for never).
    func secondsLeft(startDate: Int, activityDate: Int, now: Int) -> Int {
        let idleSince = max(startDate, activityDate)
        return max(0, minutes.saturatingProduct(60) - max(0, now - idleSince))
    }

    /// Whether a seeding torrent should stop now.
    func isReached(startDate: Int, activityDate: Int, now: Int) -> Bool {
        secondsLeft(startDate: startDate, activityDate: activityDate, now: now) == 0
    }
}
