import Foundation
public import Logging
public import TransmissionRPC

/// The daemon's settings file (`--config`): a JSON object whose keys are those of Transmission's
/// `settings.json` where the two overlap, so an operator's file reads the same.
///
/// Understood: `rpc-bind-address`, `rpc-port`, `rpc-whitelist`, `rpc-whitelist-enabled`, `download-dir`,
/// `watch-dir`, `watch-dir-enabled`, `bind-address-ipv4`, `peer-port`, `script-torrent-done-filename`,
/// `script-torrent-done-enabled`, Potluck's own `log-level`, and the session settings in `sessionKeys`.
/// Other keys are reported and left alone (a copied Transmission file has dozens); a known key with a
/// value of the wrong type refuses the whole file.
public struct DaemonSettings: Sendable, Equatable {
    public var rpcBindAddress: String?
    public var rpcPort: Int?
    /// Comma-separated addresses with `*` wildcards; `*` alone serves anyone.
    public var rpcWhitelist: String?
    public var rpcWhitelistEnabled: Bool?
    public var downloadDirectory: String?
    public var watchDirectory: String?
    public var watchDirectoryEnabled: Bool?
    public var bindAddress: String?
    public var peerPort: Int?
    public var onCompleteScript: String?
    public var onCompleteScriptEnabled: Bool?
    public var logLevel: Logger.Level?
    /// Session settings, checked as session-set checks them.
    public var session: [SessionSettingKey: JSONValue] = [:]
    /// Keys the file has that the daemon does not use.
    public var ignoredKeys: [String] = []

    /// settings.json's names for the session settings the daemon takes from the file.
    public static let sessionKeys: [String: SessionSettingKey] = [
        "speed-limit-up": .speedLimitUp, "speed-limit-up-enabled": .speedLimitUpEnabled,
        "speed-limit-down": .speedLimitDown, "speed-limit-down-enabled": .speedLimitDownEnabled,
        "alt-speed-up": .altSpeedUp, "alt-speed-down": .altSpeedDown, "alt-speed-enabled": .altSpeedEnabled,
        "alt-speed-time-enabled": .altSpeedTimeEnabled, "alt-speed-time-begin": .altSpeedTimeBegin,
        "alt-speed-time-end": .altSpeedTimeEnd, "alt-speed-time-day": .altSpeedTimeDay,
        "peer-limit-global": .peerLimitGlobal, "peer-limit-per-torrent": .peerLimitPerTorrent,
        "ratio-limit": .seedRatioLimit, "ratio-limit-enabled": .seedRatioLimited,
        "idle-seeding-limit": .idleSeedingLimit, "idle-seeding-limit-enabled": .idleSeedingLimitEnabled,
        "start-added-torrents": .startAddedTorrents,
        "incomplete-dir": .incompleteDirectory, "incomplete-dir-enabled": .incompleteDirectoryEnabled,
        "download-queue-enabled": .downloadQueueEnabled, "download-queue-size": .downloadQueueSize,
        "seed-queue-enabled": .seedQueueEnabled, "seed-queue-size": .seedQueueSize,
        "queue-stalled-enabled": .queueStalledEnabled, "queue-stalled-minutes": .queueStalledMinutes,
    ]

    public init() {}

    /// Reads and checks the file at `path`.
    public static func load(from path: String) throws(DaemonError) -> DaemonSettings {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DaemonError(description: "cannot read the settings file \(path)")
        }
        do {
            return try DaemonSettings(parsing: Array(data))
        } catch {
            throw DaemonError(description: "settings file \(path): \(error.description)")
        }
    }

    public init(parsing bytes: [UInt8]) throws(DaemonError) {
        guard let object = JSONValue(parsing: bytes)?.objectValue else {
            throw DaemonError(description: "not a JSON object")
        }
        func fail(_ key: String, _ expected: String) -> DaemonError {
            DaemonError(description: "'\(key)' must be \(expected)")
        }
        func string(_ key: String) throws(DaemonError) -> String? {
            guard let value = object[key] else { return nil }
            guard let text = value.stringValue else { throw fail(key, "a string") }
            return text
        }
        func bool(_ key: String) throws(DaemonError) -> Bool? {
            guard let value = object[key] else { return nil }
            guard let flag = value.boolValue else { throw fail(key, "true or false") }
            return flag
        }
        func port(_ key: String) throws(DaemonError) -> Int? {
            guard let value = object[key] else { return nil }
            guard let number = value.integerValue, (0...65535).contains(number) else {
                throw fail(key, "a port number (0 to 65535)")
            }
            return number
        }
        func absolutePath(_ key: String) throws(DaemonError) -> String? {
            guard let path = try string(key) else { return nil }
            guard path.hasPrefix("/") else { throw fail(key, "an absolute path") }
            return path
        }
        rpcBindAddress = try string("rpc-bind-address")
        rpcPort = try port("rpc-port")
        rpcWhitelist = try string("rpc-whitelist")
        rpcWhitelistEnabled = try bool("rpc-whitelist-enabled")
        downloadDirectory = try absolutePath("download-dir")
        watchDirectory = try absolutePath("watch-dir")
        watchDirectoryEnabled = try bool("watch-dir-enabled")
        bindAddress = try string("bind-address-ipv4")
        peerPort = try port("peer-port")
        onCompleteScript = try absolutePath("script-torrent-done-filename")
        onCompleteScriptEnabled = try bool("script-torrent-done-enabled")
        if let name = try string("log-level") {
            guard let level = Logger.Level(rawValue: name) else {
                throw fail("log-level", "one of trace, debug, info, notice, warning, error")
            }
            logLevel = level
        }
        for (name, value) in object {
            guard let key = Self.sessionKeys[name] else { continue }
            var check = SessionChanges()
            do throws(RPCFailure) {
                try check.set(key, to: value)
            } catch {
                throw DaemonError(description: "'\(name)': \(error.message)")
            }
            session[key] = value
        }
        ignoredKeys = object.keys.filter { !Self.daemonKeys.contains($0) && Self.sessionKeys[$0] == nil }
            .sorted()
    }

    private static let daemonKeys: Set<String> = [
        "rpc-bind-address", "rpc-port", "rpc-whitelist", "rpc-whitelist-enabled", "download-dir", "watch-dir",
        "watch-dir-enabled", "bind-address-ipv4", "peer-port", "script-torrent-done-filename",
        "script-torrent-done-enabled", "log-level",
    ]

    /// These settings with every one that `other` sets taking its place: the command line over the file.
    public func overlaid(by other: DaemonSettings) -> DaemonSettings {
        var result = self
        result.rpcBindAddress = other.rpcBindAddress ?? rpcBindAddress
        result.rpcPort = other.rpcPort ?? rpcPort
        result.rpcWhitelist = other.rpcWhitelist ?? rpcWhitelist
        result.rpcWhitelistEnabled = other.rpcWhitelistEnabled ?? rpcWhitelistEnabled
        result.downloadDirectory = other.downloadDirectory ?? downloadDirectory
        result.watchDirectory = other.watchDirectory ?? watchDirectory
        result.watchDirectoryEnabled = other.watchDirectoryEnabled ?? watchDirectoryEnabled
        result.bindAddress = other.bindAddress ?? bindAddress
        result.peerPort = other.peerPort ?? peerPort
        result.onCompleteScript = other.onCompleteScript ?? onCompleteScript
        result.onCompleteScriptEnabled = other.onCompleteScriptEnabled ?? onCompleteScriptEnabled
        result.logLevel = other.logLevel ?? logLevel
        result.session.merge(other.session) { $1 }
        result.ignoredKeys = ignoredKeys
        return result
    }

    // What the daemon does with them, defaults included.

    /// The RPC's client addresses; nil serves anyone.
    public var effectiveWhitelist: String? {
        if rpcWhitelistEnabled == false { return nil }
        let list = rpcWhitelist ?? "127.0.0.1,::1"
        return list.trimmingCharacters(in: .whitespaces) == "*" ? nil : list
    }

    public var effectiveWatchDirectory: String? { watchDirectoryEnabled == false ? nil : watchDirectory }

    public var effectiveOnCompleteScript: String? {
        onCompleteScriptEnabled == false ? nil : onCompleteScript
    }

    public var effectiveLogLevel: Logger.Level { logLevel ?? .info }

    /// The session settings as a session-set would make them.
    public var sessionChanges: SessionChanges {
        var changes = SessionChanges()
        for (key, value) in session { try? changes.set(key, to: value) }
        return changes
    }
}
