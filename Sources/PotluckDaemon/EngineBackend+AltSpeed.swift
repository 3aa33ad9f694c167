import TransmissionRPC

/// The alternative-speed schedule over the session: `keepBooks` looks every second, and a change of the
/// schedule applies at once.
extension EngineBackend {
    static let altSpeedScheduleKeys: Set<SessionSettingKey> = [
        .altSpeedTimeEnabled, .altSpeedTimeBegin, .altSpeedTimeEnd, .altSpeedTimeDay,
    ]

    /// Turns the alternative speeds on or off when the schedule crosses an edge at `time`: the engine's
    /// limits change at once, and `alt-speed-enabled` is kept in `session.json` as a client's change.
    func followAltSpeedSchedule(at time: LocalTime, in registry: inout Registry) {
        guard
            let on = registry.altSpeedClock.look(
                enabled: registry.session.altSpeedTimeEnabled, schedule: AltSpeedSchedule(registry.session),
                at: time),
            on != registry.session.altSpeedEnabled
        else { return }
        registry.session.altSpeedEnabled = on
        registry.sessionOverrides[SessionSettingKey.altSpeedEnabled.rawValue] = .bool(on)
        do {
            try state.saveSessionSettings(registry.sessionOverrides)
        } catch {
            logger.warning("the schedule's alt-speed-enabled could not be kept: \(error)")
        }
        applySessionLimits(changed: [.altSpeedEnabled], in: registry)
        logger.info("alternative speed limits turned \(on ? "on" : "off") by the schedule")
    }

    /// A change to the schedule applies now, as if it had just been turned on.
    func restartAltSpeedSchedule(ifChanged keys: Set<SessionSettingKey>, in registry: inout Registry) {
        guard !keys.isDisjoint(with: Self.altSpeedScheduleKeys) else { return }
        registry.altSpeedClock.reset()
        followAltSpeedSchedule(at: LocalTime(unixSeconds: Self.now()), in: &registry)
    }
}
