import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// The settings file: Transmission's key names, types checked, unknown keys reported, and the command
/// line over it.
@Suite struct DaemonSettingsTests {
    static func parse(_ json: String) throws(DaemonError) -> DaemonSettings {
        try DaemonSettings(parsing: Array(json.utf8))
    }

    @Test func transmissionKeysAreReadAndOthersReported() throws {
        let settings = try Self.parse(
            """
            {"rpc-bind-address": "0.0.0.0", "rpc-port": 9092, "rpc-whitelist": "192.168.1.*",
             "download-dir": "/srv/torrents", "watch-dir": "/srv/watch", "watch-dir-enabled": true,
             "peer-port": 51500, "script-torrent-done-filename": "/usr/local/bin/done",
             "script-torrent-done-enabled": true, "log-level": "debug",
             "speed-limit-up": 500, "speed-limit-up-enabled": true, "ratio-limit": 2.5,
             "download-queue-size": 2, "seed-queue-enabled": true, "queue-stalled-minutes": 7,
             "alt-speed-time-enabled": true, "alt-speed-time-begin": 1320, "alt-speed-time-end": 360,
             "alt-speed-time-day": 65, "encryption": 1, "rpc-authentication-required": false}
            """)
        #expect(settings.rpcBindAddress == "0.0.0.0")
        #expect(settings.rpcPort == 9092)
        #expect(settings.effectiveWhitelist == "192.168.1.*")
        #expect(settings.downloadDirectory == "/srv/torrents")
        #expect(settings.effectiveWatchDirectory == "/srv/watch")
        #expect(settings.peerPort == 51500)
        #expect(settings.effectiveOnCompleteScript == "/usr/local/bin/done")
        #expect(settings.effectiveLogLevel == .debug)
        #expect(settings.ignoredKeys == ["encryption", "rpc-authentication-required"])
        let session = settings.sessionChanges.applied(
            to: SessionSettings(downloadDirectory: "/d", configDirectory: "/c"))
        #expect(session.speedLimitUp == 500 && session.speedLimitUpEnabled)
        #expect(session.seedRatioLimit == 2.5)
        #expect(
            session.downloadQueueSize == 2 && session.seedQueueEnabled && session.queueStalledMinutes == 7)
        #expect(session.altSpeedTimeEnabled && session.altSpeedTimeDay == 65)
        #expect(session.altSpeedTimeBegin == 1320 && session.altSpeedTimeEnd == 360)
    }

    @Test func badValuesAreClearErrorsNamingTheKey() {
        for (json, message) in [
            (#"{"rpc-port": "9091"}"#, "'rpc-port' must be a port number (0 to 65535)"),
            (#"{"rpc-port": 70000}"#, "'rpc-port' must be a port number (0 to 65535)"),
            (#"{"watch-dir": "relative/watch"}"#, "'watch-dir' must be an absolute path"),
            (#"{"watch-dir-enabled": "yes"}"#, "'watch-dir-enabled' must be true or false"),
            (
                #"{"log-level": "loud"}"#,
                "'log-level' must be one of trace, debug, info, notice, warning, error"
            ),
            (#"{"speed-limit-up": "fast"}"#, "'speed-limit-up': "),
            (#"{"rpc-port": 9091"#, "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
        ] {
            do throws(DaemonError) {
                _ = try Self.parse(json)
                Issue.record("\(json) was accepted")
            } catch {
                #expect(error.description.hasPrefix(message), "\(json): \(error.description)")
            }
        }
    }

    @Test func theCommandLineWinsOverTheFile() throws {
        let file = try Self.parse(
            #"{"rpc-port": 9092, "rpc-whitelist-enabled": false, "watch-dir": "/a", "log-level": "error", "speed-limit-up": 5}"#
        )
        var commandLine = DaemonSettings()
        commandLine.rpcPort = 9093
        commandLine.rpcWhitelist = "10.0.0.*"
        commandLine.rpcWhitelistEnabled = true
        let settings = file.overlaid(by: commandLine)
        #expect(settings.rpcPort == 9093)
        #expect(settings.effectiveWhitelist == "10.0.0.*")
        #expect(settings.effectiveWatchDirectory == "/a")
        #expect(settings.effectiveLogLevel == .error)
        #expect(settings.session[.speedLimitUp] == .integer(5))
    }

    @Test func defaultsServeLoopbackOnlyAndAStarServesAnyone() throws {
        #expect(DaemonSettings().effectiveWhitelist == "127.0.0.1,::1")
        #expect(DaemonSettings().effectiveLogLevel == .info)
        #expect(try Self.parse(#"{"rpc-whitelist": " * "}"#).effectiveWhitelist == nil)
        #expect(try Self.parse(#"{"rpc-whitelist-enabled": false}"#).effectiveWhitelist == nil)
        #expect(
            try Self.parse(#"{"watch-dir": "/w", "watch-dir-enabled": false}"#).effectiveWatchDirectory == nil
        )
    }
}
