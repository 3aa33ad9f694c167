/// The limits of one torrent that may change while it runs (`Engine.setRates`, `setSeedLimits`,
/// `setMaximumPeers`); each is the `DownloadOptions` field of the same meaning.
public struct TorrentLimits: Sendable, Equatable {
    /// Payload bytes per second; 0 for no limit of the torrent's own (the engine's may still apply).
    public var uploadRateBytesPerSecond: Int
    public var downloadRateBytesPerSecond: Int
    /// Connections at once.
    public var maximumPeers: Int
    /// Seeding stops once the bytes uploaded reach this multiple of the torrent's size.
    public var seedRatioLimit: Double?
    /// Seeding stops after this long.
    public var seedTimeLimitSeconds: Int?
    /// Whether the limits shared with other torrents apply besides the rates above.
    public var honorsSharedRates: Bool

    public init(
        uploadRateBytesPerSecond: Int, downloadRateBytesPerSecond: Int, maximumPeers: Int,
        seedRatioLimit: Double?, seedTimeLimitSeconds: Int?, honorsSharedRates: Bool = true
    ) {
        self.honorsSharedRates = honorsSharedRates
        self.uploadRateBytesPerSecond = uploadRateBytesPerSecond
        self.downloadRateBytesPerSecond = downloadRateBytesPerSecond
        self.maximumPeers = maximumPeers
        self.seedRatioLimit = seedRatioLimit
        self.seedTimeLimitSeconds = seedTimeLimitSeconds
    }
}

extension DownloadOptions {
    /// The options a running torrent can be given anew.
    public var limits: TorrentLimits {
        get {
            TorrentLimits(
                uploadRateBytesPerSecond: maximumUploadRateBytesPerSecond,
                downloadRateBytesPerSecond: maximumDownloadRateBytesPerSecond, maximumPeers: maximumPeers,
                seedRatioLimit: seedRatioLimit, seedTimeLimitSeconds: seedTimeLimitSeconds,
                honorsSharedRates: honorsSharedRates)
        }
        set {
            maximumUploadRateBytesPerSecond = newValue.uploadRateBytesPerSecond
            maximumDownloadRateBytesPerSecond = newValue.downloadRateBytesPerSecond
            maximumPeers = newValue.maximumPeers
            seedRatioLimit = newValue.seedRatioLimit
            seedTimeLimitSeconds = newValue.seedTimeLimitSeconds
            honorsSharedRates = newValue.honorsSharedRates
        }
    }
}
