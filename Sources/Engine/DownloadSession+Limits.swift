extension DownloadSession {
    /// New limits while the torrent runs. Rates apply from the next transfer; a lower peer limit
    /// refuses new connections and closes none; seed limits are checked at once (a reached one stops
    /// seeding) and the seeding timer is set again for the new time limit.
    func apply(_ limits: TorrentLimits) {
        options.limits = limits
        uploadLimiter.setRate(limits.uploadRateBytesPerSecond)
        downloadLimiter.setRate(limits.downloadRateBytesPerSecond)
        uploadLimiter.setFollowsParent(limits.honorsSharedRates)
        downloadLimiter.setFollowsParent(limits.honorsSharedRates)
        scheduleTick(now: nowNanoseconds)
        reactor.touch(tenant)
    }
}
