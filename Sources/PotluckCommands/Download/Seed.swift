import ArgumentParser
import CommandSupport
import Engine
import Foundation
import Locking
import Metainfo
import URing

struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Seed torrents from data already on disk.",
        discussion: """
            Checks the data (or trusts valid resume data), then accepts peers on --listen and uploads to \
            them with the tit-for-tat choker, rotating fairly among interested peers, until Ctrl-C. Pieces \
            that fail the check are downloaded first from any --peer given. With several torrents, one \
            --listen port serves them all: each incoming peer goes to the torrent its handshake names.

            Examples:
              potluck seed movie.torrent --data ~/media --listen 0.0.0.0:6881
              potluck seed ~/torrents --data ~/media        (every .torrent in the folder)
            """)

    @Argument(
        help: "The .torrent files, or folders whose .torrent files are all seeded.",
        completion: .file(extensions: ["torrent"]))
    var torrents: [String]

    @Option(help: "The folder that holds the torrents' data.")
    var data: String = "."

    @Option(help: "Accept peers on HOST:PORT.")
    var listen: String = "0.0.0.0:6881"

    @Option(name: .customLong("peer"), help: "A peer to connect to as well; repeatable.")
    var peers: [String] = []

    @OptionGroup var sharing: SharingOptions

    @OptionGroup var dht: DHTCommandOptions

    @OptionGroup var lsd: LocalDiscoveryCommandOptions

    @Option(help: "Upload limit for each torrent, within --max-upload-rate (0: none).")
    var maxUploadRatePerTorrent: String = "0"

    @Option(help: "Download limit for each torrent, within --max-download-rate (0: none).")
    var maxDownloadRatePerTorrent: String = "0"

    @Option(help: "Connections for all torrents together.")
    var maxConnections: Int = 500

    @Option(
        help: ArgumentHelp(
            "Reactor threads that host the torrents (default: one per core).",
            discussion:
                "Each torrent lives on one reactor; a reactor drives its ring for all of its torrents."))
    var reactors: Int?

    @Option(
        name: .customLong("rest-after"),
        help: ArgumentHelp(
            "Seconds without a peer after which a seed rests (0: never).",
            discussion: """
                A resting seed gives its session back (a few KiB each, which adds up over thousands of \
                torrents) and keeps its place: a peer that connects wakes it, and so does its trackers' \
                next announce.
                """,
            valueName: "seconds"))
    var restAfter = 30

    func validate() throws {
        guard !torrents.isEmpty else { throw ValidationError("give at least one .torrent file") }
        guard SocketAddress(listen) != nil else {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        for peer in peers where SocketAddress(peer) == nil {
            throw ValidationError("--peer \(peer) is not HOST:PORT with a numeric address")
        }
        if let reactors, !(1...256).contains(reactors) {
            throw ValidationError("--reactors must be between 1 and 256")
        }
        guard restAfter >= 0 else { throw ValidationError("--rest-after must be 0 or more seconds") }
        guard (1...100_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be between 1 and 100000")
        }
        try SharingOptions.validateRate(maxUploadRatePerTorrent, name: "--max-upload-rate-per-torrent")
        try SharingOptions.validateRate(maxDownloadRatePerTorrent, name: "--max-download-rate-per-torrent")
    }

    func run() throws {
        let paths = try torrentPaths()
        guard paths.count > 1 else { return try seedOne(paths[0]) }
        try seedSeveral(paths)
    }

    /// The torrent arguments with each folder replaced by the `.torrent` files directly inside it, by name.
    private func torrentPaths() throws -> [String] {
        var paths: [String] = []
        for argument in torrents {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory),
                isDirectory.boolValue
            else {
                paths.append(argument)
                continue
            }
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: argument) else {
                printError("potluck: cannot list the folder \(argument)")
                throw ExitCode(1)
            }
            let found = names.filter { $0.hasSuffix(".torrent") }.sorted()
            guard !found.isEmpty else {
                printError("potluck: the folder \(argument) holds no .torrent files")
                throw ExitCode(1)
            }
            paths += found.map { argument + "/" + $0 }
        }
        return paths
    }

    private func seedOne(_ torrent: String) throws {
        // One torrent: the tighter of the process-wide and per-torrent limits is the limit, and of
        // --max-peers and --max-connections.
        func tighter(_ a: String, _ b: String) -> String {
            let rates = [a, b].compactMap(LimitParsing.rateBytesPerSecond).filter { $0 > 0 }
            return "\(rates.min() ?? 0)"
        }
        var forwarded = sharing
        forwarded.maxUploadRate = tighter(sharing.maxUploadRate, maxUploadRatePerTorrent)
        forwarded.maxDownloadRate = tighter(sharing.maxDownloadRate, maxDownloadRatePerTorrent)
        forwarded.maxPeers = min(sharing.maxPeers, maxConnections)
        let arguments =
            [torrent, "-o", data, "--listen", listen, "--seed"] + peers.flatMap { ["--peer", $0] }
            + forwarded.arguments + dht.arguments + lsd.arguments
        let download = try Download.parse(arguments)
        try download.run()
    }

    /// Every torrent in one engine: its reactors host them all, behind one router on --listen.
    private func seedSeveral(_ torrents: [String]) throws {
        var metainfos: [Metainfo] = []
        for torrent in torrents {
            guard let bytes = FileManager.default.contents(atPath: torrent) else {
                printError("potluck: cannot read \(torrent)")
                throw ExitCode(1)
            }
            do {
                metainfos.append(try Metainfo(bytes: Array(bytes)))
            } catch {
                printError("potluck: \(torrent) is not a valid torrent: \(error)")
                throw ExitCode(1)
            }
        }
        guard Set(metainfos.map(\.wireInfoHash)).count == metainfos.count else {
            printError("potluck: the same torrent is given twice")
            throw ExitCode(1)
        }
        installStopSignals()
        let verbose = sharing.verbose
        let logLock = Lock(())
        var engineOptions = EngineOptions()
        if let reactors { engineOptions.reactors = reactors }
        engineOptions.restIdleSeedsAfterSeconds = restAfter > 0 ? restAfter : nil
        engineOptions.listenAddress = SocketAddress(listen)
        engineOptions.dht = dht.engineOptions(statePath: DHTCommandOptions.cacheStatePath)
        engineOptions.localDiscovery = !lsd.noLSD
        engineOptions.maximumConnections = maxConnections
        engineOptions.maximumUploadRateBytesPerSecond =
            LimitParsing.rateBytesPerSecond(sharing.maxUploadRate) ?? 0
        engineOptions.maximumDownloadRateBytesPerSecond =
            LimitParsing.rateBytesPerSecond(sharing.maxDownloadRate) ?? 0
        engineOptions.log = { message in
            if verbose { logLock.withLock { _ in printError(message) } }
        }
        let engine: Engine
        do {
            engine = try Engine(options: engineOptions)
        } catch {
            printError("potluck: \(error)")
            throw ExitCode(1)
        }
        printError(
            "listening for peers on \(engine.boundAddress.map { "\($0)" } ?? "?") for \(metainfos.count) "
                + "torrents on \(engine.reactorCount) reactors")
        for metainfo in metainfos {
            var options = DownloadOptions(
                downloadDirectory: data, peers: peers.compactMap { SocketAddress($0) })
            options.seedWhenComplete = true
            sharing.apply(to: &options)
            // Within the engine's limits, each torrent has its own.
            options.maximumUploadRateBytesPerSecond =
                LimitParsing.rateBytesPerSecond(maxUploadRatePerTorrent) ?? 0
            options.maximumDownloadRateBytesPerSecond =
                LimitParsing.rateBytesPerSecond(maxDownloadRatePerTorrent) ?? 0
            do {
                try engine.add(metainfo, options: options)
            } catch {
                printError("potluck: \(metainfo.name): \(error)")
            }
        }
        // Every torrent ends on Ctrl-C, on its own limits, or on an error; running out of what they
        // all share (descriptors, memory) stops them all.
        let count = metainfos.count
        var progress = ProgressLine(label: "seeding", quiet: sharing.quiet)
        var stopping = false
        var summary = engine.summary()
        while true {
            if !stopping && (stopRequested.load(ordering: .relaxed) || summary.exhaustedProcessResources) {
                stopping = true
                // Returns once every torrent has stopped cleanly.
                engine.shutdown()
                summary = engine.summary()
                break
            }
            if summary.live == 0 { break }
            progress.update(
                done: summary.uploadedPayloadBytes, total: max(summary.uploadedPayloadBytes, 1),
                rateBytesPerSecond: summary.uploadRateBytesPerSecond,
                extra:
                    "\(count) torrents (\(summary.resting) resting), uploaded, peers \(summary.connectedPeers)"
            )
            usleep(250_000)
            summary = engine.summary()
        }
        if !stopping { engine.shutdown() }
        progress.finish()
        if let first = summary.firstFailure {
            let others = summary.failed - 1
            printError("potluck: \(first)" + (others > 0 ? " (and \(others) more torrents failed)" : ""))
            if summary.exhaustedProcessResources {
                printError(
                    "potluck: stopped every torrent: the process ran out of descriptors, threads or memory")
            }
            throw ExitCode(1)
        }
        if stopRequested.load(ordering: .relaxed) { throw ExitCode(130) }
    }
}
