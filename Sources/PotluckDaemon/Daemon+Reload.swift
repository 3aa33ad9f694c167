import Foundation
import Logging
import TransmissionRPC

extension Daemon {
    /// SIGHUP: reads the settings file again, lays the command line over it, and applies what can
    /// change while the daemon runs: the address whitelist, the log level, the watch folder, the
    /// on-completion script, the download folder for new torrents and the session's limits. A file
    /// that cannot be read or checked changes nothing. `applied` is what is in force.
    func reloadSettings(applied: inout DaemonSettings, watch: inout WatchFolder?) {
        let logger = configuration.logger
        guard let path = configuration.settingsFile else {
            logger.notice("SIGHUP: no settings file (--config) to reload")
            return
        }
        let settings: DaemonSettings
        do {
            settings = try DaemonSettings.load(from: path).overlaid(by: configuration.commandLineSettings)
        } catch {
            logger.error("SIGHUP: \(error); the settings in force are kept")
            return
        }
        if !settings.ignoredKeys.isEmpty {
            logger.notice("settings file \(path): ignoring \(settings.ignoredKeys.joined(separator: ", "))")
        }
        for (name, old, new) in [
            ("rpc-bind-address", applied.rpcBindAddress, settings.rpcBindAddress),
            ("rpc-port", applied.rpcPort.map(String.init), settings.rpcPort.map(String.init)),
            ("bind-address-ipv4", applied.bindAddress, settings.bindAddress),
            ("peer-port", applied.peerPort.map(String.init), settings.peerPort.map(String.init)),
        ] where old != new {
            logger.warning("settings file \(path): \(name) changes at the next start, not now")
        }

        live.policy.addressWhitelist = settings.effectiveWhitelist.map(WildcardPattern.list)
        live.onCompleteScript = settings.effectiveOnCompleteScript
        configuration.logThreshold?.level = settings.effectiveLogLevel
        if settings.effectiveWatchDirectory != applied.effectiveWatchDirectory {
            watch = openWatchFolder(settings.effectiveWatchDirectory)
        }
        var session = settings.sessionChanges
        if let folder = settings.downloadDirectory, folder != applied.downloadDirectory {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try? session.set(.downloadDirectory, to: .string(folder))
            } catch {
                logger.error(
                    "settings file \(path): cannot use download-dir \(folder): \(error.localizedDescription)")
            }
        }
        backend.layOperatorSettings(session)
        applied = settings
        let whitelist = settings.effectiveWhitelist ?? "*"
        let watching = settings.effectiveWatchDirectory ?? "none"
        logger.notice(
            "reloaded \(path): whitelist \(whitelist), log level \(settings.effectiveLogLevel), watch folder \(watching)"
        )
    }

    /// The watch folder at `path` (created if missing), or nil with the reason logged.
    func openWatchFolder(_ path: String?) -> WatchFolder? {
        guard let path else { return nil }
        do {
            return try WatchFolder(path: path)
        } catch {
            configuration.logger.error("cannot use the watch folder \(path): \(error.localizedDescription)")
            return nil
        }
    }
}
