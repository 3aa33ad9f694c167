import Glibc
import TransmissionRPC

/// A moment of the week in local time, as the alternative-speed schedule reads the clock.
struct LocalTime: Sendable, Hashable {
    /// 0 for Sunday … 6 for Saturday.
    var weekday: Int
    /// Minutes after midnight, 0..<1440.
    var minute: Int

    /// The local time at `unixSeconds`, by the machine's time zone.
    init(unixSeconds: Int) {
        var seconds = time_t(unixSeconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        self.init(weekday: Int(parts.tm_wday), minute: Int(parts.tm_hour) * 60 + Int(parts.tm_min))
    }

    init(weekday: Int, minute: Int) {
        self.weekday = weekday
        self.minute = minute
    }
}

/// Transmission's alternative-speed schedule (`alt-speed-time-*`): on the days of `days` (a bit mask,
/// Sunday 1 … Saturday 64) from `beginMinute` to `endMinute` (minutes after midnight, local time) the
/// alternative limits apply. A period whose end is not after its begin runs past midnight into the
/// next day (Saturday's into Sunday); one that ends where it begins lasts the whole day.
struct AltSpeedSchedule: Sendable, Hashable {
    static let minutesPerDay = 24 * 60
    static let minutesPerWeek = 7 * minutesPerDay

    let beginMinute: Int
    let endMinute: Int
    let days: Int

    /// Out-of-range minutes are clamped to the day (an end may be 1440, midnight), other bits of
    /// `days` ignored.
    init(beginMinute: Int, endMinute: Int, days: Int) {
        self.beginMinute = min(max(0, beginMinute), Self.minutesPerDay - 1)
        self.endMinute = min(max(0, endMinute), Self.minutesPerDay)
        self.days = days & 0x7F
    }

    init(_ session: SessionSettings) {
        self.init(
            beginMinute: session.altSpeedTimeBegin, endMinute: session.altSpeedTimeEnd,
            days: session.altSpeedTimeDay)
    }

    /// Whether `time` lies in one of the periods: those that begin on a chosen day, including the
    /// part of the previous day's that runs past midnight.
    func contains(_ time: LocalTime) -> Bool {
        let length =
            endMinute > beginMinute ? endMinute - beginMinute : endMinute - beginMinute + Self.minutesPerDay
        let minuteOfWeek = time.weekday * Self.minutesPerDay + time.minute
        return (0..<7).contains { day in
            guard days & (1 << day) != 0 else { return false }
            let start = day * Self.minutesPerDay + beginMinute
            return (minuteOfWeek - start + Self.minutesPerWeek) % Self.minutesPerWeek < length
        }
    }
}

/// When the schedule turns `alt-speed-enabled` on or off, as Transmission's "turtle" clock does: only
/// at the edges of its periods, so that a client's toggle in between holds until the next edge. When
/// the schedule is turned on or changed, it applies at once.
struct AltSpeedClock: Sendable, Hashable {
    /// What the schedule last decided (nil: nothing yet since it was turned on or changed).
    private var lastDecision: Bool?

    /// The schedule was turned on, off, or changed: the next look applies it whatever it decided before.
    mutating func reset() { lastDecision = nil }

    /// What `alt-speed-enabled` must become at `time`, or nil to leave it as it is (the schedule is
    /// off, or no edge was crossed since the last look).
    mutating func look(enabled: Bool, schedule: AltSpeedSchedule, at time: LocalTime) -> Bool? {
        guard enabled else {
            lastDecision = nil
            return nil
        }
        let inPeriod = schedule.contains(time)
        guard inPeriod != lastDecision else { return nil }
        lastDecision = inPeriod
        return inPeriod
    }
}
