import ArgumentParser
import Engine

/// What `download` and `seed` both take: seeding limits, rate and connection limits, trackers, output.
struct SharingOptions: ParsableArguments {
    @Option(
        help: "Stop seeding once uploaded bytes reach R times the torrent's size (download: with --seed).")
    var seedRatio: Double?

    @Option(help: "Stop seeding after this long: 90s, 15m, 2h, or seconds (download: with --seed).")
    var seedTime: String?

    @Option(help: "Upload limit for all peers (and torrents) together, bytes per second (500K, 2M; 0: none).")
    var maxUploadRate: String = "0"

    @Option(help: "Download limit for all peers (and torrents) together, bytes per second (0: none).")
    var maxDownloadRate: String = "0"

    @Option(help: "Peers uploaded to at once per torrent, besides one optimistic unchoke (tit-for-tat).")
    var uploadSlots: Int = 4

    @Option(help: "Connections at once per torrent (incoming and outgoing).")
    var maxPeers: Int = 64

    @Flag(help: "Do not announce to the torrent's trackers; use only --peer and --listen.")
    var noTrackers = false

    @Flag(
        name: .customLong("no-pex"),
        help: "Do not trade peers with peers (BEP 11 peer exchange; private torrents never do).")
    var noPeerExchange = false

    @Option(
        name: .customLong("tracker-ca"),
        help: "A PEM file of CA certificates to trust for HTTPS trackers, besides the system's.")
    var trackerCAFile: String?

    @Option(
        help: """
            Seconds between resume-data saves (also saved at exit). After a kill, pieces written since \
            the last save are found by checking what is on disk, so this bounds no loss, only that check.
            """)
    var resumeSaveInterval: Int = 30

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    @Flag(
        help:
            "Log each peer event (connections, bans) to standard error, and the start step by step once the first piece is on disk."
    )
    var verbose = false

    func validate() throws {
        guard (0...1000).contains(uploadSlots) else {
            throw ValidationError("--upload-slots must be between 0 and 1000")
        }
        guard (1...10_000).contains(maxPeers) else {
            throw ValidationError("--max-peers must be between 1 and 10000")
        }
        for (name, value) in [("--max-upload-rate", maxUploadRate), ("--max-download-rate", maxDownloadRate)]
        {
            try Self.validateRate(value, name: name)
        }
        if let seedTime, LimitParsing.seconds(seedTime) == nil {
            throw ValidationError("--seed-time \(seedTime) is not a duration such as 90s, 15m or 2h")
        }
        guard (1...86_400).contains(resumeSaveInterval) else {
            throw ValidationError("--resume-save-interval must be between 1 and 86400 seconds")
        }
        if let seedRatio, !(seedRatio >= 0) {
            throw ValidationError("--seed-ratio must be a number at least 0")
        }
    }

    static func validateRate(_ value: String, name: String) throws {
        guard LimitParsing.rateBytesPerSecond(value) != nil else {
            throw ValidationError("\(name) \(value) is not a rate such as 500K, 2M or 1048576")
        }
    }

    /// Sets what these options decide; the rate limits as this torrent's own.
    func apply(to options: inout DownloadOptions) {
        options.seedRatioLimit = seedRatio
        options.seedTimeLimitSeconds = seedTime.flatMap(LimitParsing.seconds)
        options.maximumUploadRateBytesPerSecond = LimitParsing.rateBytesPerSecond(maxUploadRate) ?? 0
        options.maximumDownloadRateBytesPerSecond = LimitParsing.rateBytesPerSecond(maxDownloadRate) ?? 0
        options.uploadSlots = uploadSlots
        options.usePeerExchange = !noPeerExchange
        options.maximumPeers = maxPeers
        options.useTrackers = !noTrackers
        options.trackerCAFile = trackerCAFile
        options.resumeSaveIntervalSeconds = resumeSaveInterval
    }

    /// The same options as arguments, to hand on to another command.
    var arguments: [String] {
        var arguments = [
            "--max-upload-rate", maxUploadRate, "--max-download-rate", maxDownloadRate, "--upload-slots",
            "\(uploadSlots)", "--max-peers", "\(maxPeers)", "--resume-save-interval", "\(resumeSaveInterval)",
        ]
        if let seedRatio { arguments += ["--seed-ratio", "\(seedRatio)"] }
        if let seedTime { arguments += ["--seed-time", seedTime] }
        if noTrackers { arguments.append("--no-trackers") }
        if noPeerExchange { arguments.append("--no-pex") }
        if let trackerCAFile { arguments += ["--tracker-ca", trackerCAFile] }
        if quiet { arguments.append("--quiet") }
        if verbose { arguments.append("--verbose") }
        return arguments
    }
}
