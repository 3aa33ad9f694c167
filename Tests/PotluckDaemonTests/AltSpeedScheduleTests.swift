import Foundation
import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// The alternative-speed schedule with the clock handed in: days, periods past midnight, edges, and a
/// client's toggle between edges.
@Suite struct AltSpeedScheduleTests {
    private let sunday = 0, monday = 1, friday = 5, saturday = 6
    private let weekdays = 0b011_1110  // Monday (2) … Friday (32)

    private func at(_ weekday: Int, _ hour: Int, _ minute: Int = 0) -> LocalTime {
        LocalTime(weekday: weekday, minute: hour * 60 + minute)
    }

    /// 09:00–17:00, the end not included, on the chosen days only.
    @Test func aDaytimePeriodOnChosenDays() {
        let schedule = AltSpeedSchedule(beginMinute: 9 * 60, endMinute: 17 * 60, days: weekdays)
        #expect(!schedule.contains(at(monday, 8, 59)))
        #expect(schedule.contains(at(monday, 9)))
        #expect(schedule.contains(at(friday, 16, 59)))
        #expect(!schedule.contains(at(friday, 17)))
        #expect(!schedule.contains(at(saturday, 12)))
        #expect(!schedule.contains(at(sunday, 12)))
        let everyDay = AltSpeedSchedule(beginMinute: 9 * 60, endMinute: 17 * 60, days: 127)
        #expect((0..<7).allSatisfy { everyDay.contains(at($0, 12)) })
    }

    /// Begin after end: the period runs past midnight into the next day; Saturday's into Sunday.
    @Test func aNightPeriodWrapsPastMidnight() {
        let fridayNights = AltSpeedSchedule(beginMinute: 22 * 60, endMinute: 6 * 60, days: 1 << friday)
        #expect(!fridayNights.contains(at(friday, 21, 59)))
        #expect(fridayNights.contains(at(friday, 23)))
        #expect(fridayNights.contains(at(saturday, 5, 59)))
        #expect(!fridayNights.contains(at(saturday, 6)))
        // Friday's morning hours belong to Thursday's period, which is not chosen.
        #expect(!fridayNights.contains(at(friday, 1)))
        let saturdayNights = AltSpeedSchedule(beginMinute: 22 * 60, endMinute: 6 * 60, days: 1 << saturday)
        #expect(saturdayNights.contains(at(sunday, 2)))
        #expect(!saturdayNights.contains(at(saturday, 2)))
        // Ending where it begins: all day.
        let allDay = AltSpeedSchedule(beginMinute: 8 * 60, endMinute: 8 * 60, days: 1 << monday)
        #expect(allDay.contains(at(monday, 8)) && allDay.contains(at(tuesday: 7, 59)))
        #expect(!allDay.contains(at(tuesday: 8, 0)))
        #expect(!AltSpeedSchedule(beginMinute: 0, endMinute: 600, days: 0).contains(at(monday, 1)))
    }

    private func at(tuesday hour: Int, _ minute: Int) -> LocalTime { at(2, hour, minute) }

    /// The schedule decides only at its edges: a client's toggle in between holds until the next one.
    @Test func theClockFlipsOnlyAtEdges() {
        let schedule = AltSpeedSchedule(beginMinute: 9 * 60, endMinute: 17 * 60, days: 127)
        var clock = AltSpeedClock()
        #expect(clock.look(enabled: false, schedule: schedule, at: at(monday, 10)) == nil)
        // Turned on inside a period: on at once.
        #expect(clock.look(enabled: true, schedule: schedule, at: at(monday, 10)) == true)
        // The client turned it off meanwhile: nothing changes it back before the edge...
        #expect(clock.look(enabled: true, schedule: schedule, at: at(monday, 12)) == nil)
        // ...where the period ends: off.
        #expect(clock.look(enabled: true, schedule: schedule, at: at(monday, 17)) == false)
        #expect(clock.look(enabled: true, schedule: schedule, at: at(monday, 23)) == nil)
        #expect(clock.look(enabled: true, schedule: schedule, at: at(2, 9)) == true)
        // A changed schedule applies at once, whatever was decided.
        clock.reset()
        #expect(clock.look(enabled: true, schedule: schedule, at: at(2, 9, 30)) == true)
        // Turned off and on again: applies at once too.
        #expect(clock.look(enabled: false, schedule: schedule, at: at(2, 10)) == nil)
        #expect(clock.look(enabled: true, schedule: schedule, at: at(2, 10)) == true)
    }

    @Test func localTimeFollowsTheMachinesTimeZone() {
        let now = Int(Date().timeIntervalSince1970)
        let parts = Calendar.current.dateComponents(
            [.weekday, .hour, .minute], from: Date(timeIntervalSince1970: TimeInterval(now)))
        let time = LocalTime(unixSeconds: now)
        #expect(time.weekday == parts.weekday! - 1)
        #expect(time.minute == parts.hour! * 60 + parts.minute!)
    }

    /// In the daemon: session-set's schedule sets `alt-speed-enabled` and the engine's limits, kept in
    /// `session.json`; session-get shows it.
    @Test func theBackendAppliesTheScheduleToTheEngine() async throws {
        let fixture = try DaemonLimitsTests.Fixture()
        let backend = fixture.backend
        try await backend.updateSession(
            DaemonLimitsTests.changes([
                .altSpeedUp: .integer(20), .altSpeedDown: .integer(40), .altSpeedTimeBegin: .integer(9 * 60),
                .altSpeedTimeEnd: .integer(17 * 60), .altSpeedTimeDay: .integer(127),
            ]))
        // Not enabled yet: the schedule does nothing.
        backend.registry.withLock { backend.followAltSpeedSchedule(at: at(monday, 10), in: &$0) }
        #expect(await !backend.sessionSettings().altSpeedEnabled)
        try await backend.updateSession(DaemonLimitsTests.changes([.altSpeedTimeEnabled: .bool(true)]))
        backend.registry.withLock { $0.altSpeedClock.reset() }
        backend.registry.withLock { backend.followAltSpeedSchedule(at: at(monday, 10), in: &$0) }
        #expect(await backend.sessionSettings().altSpeedEnabled)
        #expect(fixture.engine.globalUploadRateBytesPerSecond == 20_000)
        #expect(fixture.engine.globalDownloadRateBytesPerSecond == 40_000)
        let kept = backend.state.loadSessionSettings()
        #expect(kept["alt-speed-enabled"] == .bool(true))
        #expect(kept["alt-speed-time-enabled"] == .bool(true))
        backend.registry.withLock { backend.followAltSpeedSchedule(at: at(monday, 17), in: &$0) }
        #expect(await !backend.sessionSettings().altSpeedEnabled)
        #expect(fixture.engine.globalUploadRateBytesPerSecond == 0)
        #expect(backend.state.loadSessionSettings()["alt-speed-enabled"] == .bool(false))
    }
}
