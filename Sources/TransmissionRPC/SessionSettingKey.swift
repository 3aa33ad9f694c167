/// A session-get and session-set key backed by ``SessionSettings``.
public enum SessionSettingKey: String, Sendable, Hashable, CaseIterable {
    case altSpeedDown = "alt-speed-down"
    case altSpeedEnabled = "alt-speed-enabled"
    case altSpeedTimeBegin = "alt-speed-time-begin"
    case altSpeedTimeDay = "alt-speed-time-day"
    case altSpeedTimeEnabled = "alt-speed-time-enabled"
    case altSpeedTimeEnd = "alt-speed-time-end"
    case altSpeedUp = "alt-speed-up"
    case blocklistEnabled = "blocklist-enabled"
    case blocklistSize = "blocklist-size"
    case blocklistURL = "blocklist-url"
    case cacheSizeMB = "cache-size-mb"
    case configDirectory = "config-dir"
    case defaultTrackers = "default-trackers"
    case dhtEnabled = "dht-enabled"
    case downloadDirectory = "download-dir"
    case downloadQueueEnabled = "download-queue-enabled"
    case downloadQueueSize = "download-queue-size"
    case encryption
    case idleSeedingLimit = "idle-seeding-limit"
    case idleSeedingLimitEnabled = "idle-seeding-limit-enabled"
    case incompleteDirectory = "incomplete-dir"
    case incompleteDirectoryEnabled = "incomplete-dir-enabled"
    case lpdEnabled = "lpd-enabled"
    case peerLimitGlobal = "peer-limit-global"
    case peerLimitPerTorrent = "peer-limit-per-torrent"
    case peerPort = "peer-port"
    case peerPortRandomOnStart = "peer-port-random-on-start"
    case pexEnabled = "pex-enabled"
    case portForwardingEnabled = "port-forwarding-enabled"
    case queueStalledEnabled = "queue-stalled-enabled"
    case queueStalledMinutes = "queue-stalled-minutes"
    case renamePartialFiles = "rename-partial-files"
    case scriptTorrentAddedEnabled = "script-torrent-added-enabled"
    case scriptTorrentAddedFilename = "script-torrent-added-filename"
    case scriptTorrentDoneEnabled = "script-torrent-done-enabled"
    case scriptTorrentDoneFilename = "script-torrent-done-filename"
    case scriptTorrentDoneSeedingEnabled = "script-torrent-done-seeding-enabled"
    case scriptTorrentDoneSeedingFilename = "script-torrent-done-seeding-filename"
    case seedQueueEnabled = "seed-queue-enabled"
    case seedQueueSize = "seed-queue-size"
    case seedRatioLimit
    case seedRatioLimited
    case speedLimitDown = "speed-limit-down"
    case speedLimitDownEnabled = "speed-limit-down-enabled"
    case speedLimitUp = "speed-limit-up"
    case speedLimitUpEnabled = "speed-limit-up-enabled"
    case startAddedTorrents = "start-added-torrents"
    case trashOriginalTorrentFiles = "trash-original-torrent-files"
    case utpEnabled = "utp-enabled"

    /// False for the keys session-set ignores, as Transmission does.
    public var isWritable: Bool { self != .blocklistSize && self != .configDirectory }

    private enum Storage {
        case integer(WritableKeyPath<SessionSettings, Int>)
        case bool(WritableKeyPath<SessionSettings, Bool>)
        case real(WritableKeyPath<SessionSettings, Double>)
        case string(WritableKeyPath<SessionSettings, String>)
        case encryption
    }

    private var storage: Storage {
        switch self {
        case .altSpeedDown: .integer(\.altSpeedDown)
        case .altSpeedEnabled: .bool(\.altSpeedEnabled)
        case .altSpeedTimeBegin: .integer(\.altSpeedTimeBegin)
        case .altSpeedTimeDay: .integer(\.altSpeedTimeDay)
        case .altSpeedTimeEnabled: .bool(\.altSpeedTimeEnabled)
        case .altSpeedTimeEnd: .integer(\.altSpeedTimeEnd)
        case .altSpeedUp: .integer(\.altSpeedUp)
        case .blocklistEnabled: .bool(\.blocklistEnabled)
        case .blocklistSize: .integer(\.blocklistSize)
        case .blocklistURL: .string(\.blocklistURL)
        case .cacheSizeMB: .integer(\.cacheSizeMB)
        case .configDirectory: .string(\.configDirectory)
        case .defaultTrackers: .string(\.defaultTrackers)
        case .dhtEnabled: .bool(\.dhtEnabled)
        case .downloadDirectory: .string(\.downloadDirectory)
        case .downloadQueueEnabled: .bool(\.downloadQueueEnabled)
        case .downloadQueueSize: .integer(\.downloadQueueSize)
        case .encryption: .encryption
        case .idleSeedingLimit: .integer(\.idleSeedingLimit)
        case .idleSeedingLimitEnabled: .bool(\.idleSeedingLimitEnabled)
        case .incompleteDirectory: .string(\.incompleteDirectory)
        case .incompleteDirectoryEnabled: .bool(\.incompleteDirectoryEnabled)
        case .lpdEnabled: .bool(\.lpdEnabled)
        case .peerLimitGlobal: .integer(\.peerLimitGlobal)
        case .peerLimitPerTorrent: .integer(\.peerLimitPerTorrent)
        case .peerPort: .integer(\.peerPort)
        case .peerPortRandomOnStart: .bool(\.peerPortRandomOnStart)
        case .pexEnabled: .bool(\.pexEnabled)
        case .portForwardingEnabled: .bool(\.portForwardingEnabled)
        case .queueStalledEnabled: .bool(\.queueStalledEnabled)
        case .queueStalledMinutes: .integer(\.queueStalledMinutes)
        case .renamePartialFiles: .bool(\.renamePartialFiles)
        case .scriptTorrentAddedEnabled: .bool(\.scriptTorrentAddedEnabled)
        case .scriptTorrentAddedFilename: .string(\.scriptTorrentAddedFilename)
        case .scriptTorrentDoneEnabled: .bool(\.scriptTorrentDoneEnabled)
        case .scriptTorrentDoneFilename: .string(\.scriptTorrentDoneFilename)
        case .scriptTorrentDoneSeedingEnabled: .bool(\.scriptTorrentDoneSeedingEnabled)
        case .scriptTorrentDoneSeedingFilename: .string(\.scriptTorrentDoneSeedingFilename)
        case .seedQueueEnabled: .bool(\.seedQueueEnabled)
        case .seedQueueSize: .integer(\.seedQueueSize)
        case .seedRatioLimit: .real(\.seedRatioLimit)
        case .seedRatioLimited: .bool(\.seedRatioLimited)
        case .speedLimitDown: .integer(\.speedLimitDown)
        case .speedLimitDownEnabled: .bool(\.speedLimitDownEnabled)
        case .speedLimitUp: .integer(\.speedLimitUp)
        case .speedLimitUpEnabled: .bool(\.speedLimitUpEnabled)
        case .startAddedTorrents: .bool(\.startAddedTorrents)
        case .trashOriginalTorrentFiles: .bool(\.trashOriginalTorrentFiles)
        case .utpEnabled: .bool(\.utpEnabled)
        }
    }

    /// This key's value in `settings`, as session-get writes it.
    public func value(in settings: SessionSettings) -> JSONValue {
        switch storage {
        case .integer(let path): .integer(settings[keyPath: path])
        case .bool(let path): .bool(settings[keyPath: path])
        case .real(let path): .real(settings[keyPath: path])
        case .string(let path): .string(settings[keyPath: path])
        case .encryption: .string(settings.encryption.rawValue)
        }
    }

    func assign(_ value: JSONValue, to settings: inout SessionSettings) throws(RPCFailure) {
        switch storage {
        case .integer(let path): settings[keyPath: path] = try ArgumentReader.integer(value, named: rawValue)
        case .bool(let path): settings[keyPath: path] = try ArgumentReader.bool(value, named: rawValue)
        case .real(let path): settings[keyPath: path] = try ArgumentReader.real(value, named: rawValue)
        case .string(let path): settings[keyPath: path] = try ArgumentReader.string(value, named: rawValue)
        case .encryption:
            guard let mode = value.stringValue.flatMap(EncryptionMode.init(rawValue:)) else {
                throw RPCFailure("argument 'encryption' must be \"required\", \"preferred\" or \"tolerated\"")
            }
            settings.encryption = mode
        }
    }

    func copy(from source: SessionSettings, to target: inout SessionSettings) {
        switch storage {
        case .integer(let path): target[keyPath: path] = source[keyPath: path]
        case .bool(let path): target[keyPath: path] = source[keyPath: path]
        case .real(let path): target[keyPath: path] = source[keyPath: path]
        case .string(let path): target[keyPath: path] = source[keyPath: path]
        case .encryption: target.encryption = source.encryption
        }
    }
}
