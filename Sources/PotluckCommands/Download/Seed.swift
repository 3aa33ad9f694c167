import ArgumentParser
import CommandSupport
import Engine
import Foundation
import Metainfo
import Synchronization
import URing

struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
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

    @Option(help: "Upload limit for each torrent, within --max-upload-rate (0: none).")
    var maxUploadRatePerTorrent: String = "0"

    @Option(help: "Download limit for each torrent, within --max-download-rate (0: none).")
    var maxDownloadRatePerTorrent: String = "0"

    @Option(help: "Connections for all torrents together.")
    var maxConnections: Int = 500

    func validate() throws {
        guard !torrents.isEmpty else { throw ValidationError("give at least one .torrent file") }
        guard SocketAddress(listen) != nil else {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        for peer in peers where SocketAddress(peer) == nil {
            throw ValidationError("--peer \(peer) is not HOST:PORT with a numeric address")
        }
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
            + forwarded.arguments
        let download = try Download.parse(arguments)
        try download.run()
    }

    /// One session per torrent, each on its own reactor thread, behind one router on --listen.
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
        let logLock = Mutex(())
        let log: @Sendable (String) -> Void = { message in
            if verbose { logLock.withLock { _ in printError(message) } }
        }
        let router: IncomingRouter
        do {
            router = try IncomingRouter(listenAddress: SocketAddress(listen)!, log: log)
        } catch {
            printError("potluck: \(error.description)")
            throw ExitCode(1)
        }
        printError("listening for peers on \(router.boundAddress) for \(metainfos.count) torrents")

        let connections = ConnectionBudget(limit: maxConnections)
        let uploadLimiter = RateLimiter(
            rateBytesPerSecond: LimitParsing.rateBytesPerSecond(sharing.maxUploadRate) ?? 0)
        let downloadLimiter = RateLimiter(
            rateBytesPerSecond: LimitParsing.rateBytesPerSecond(sharing.maxDownloadRate) ?? 0)
        let finished = Atomic<Int>(0)
        // Each session's latest status, for one progress line over all of them.
        let statuses = Mutex<[DownloadStatus?]>(Array(repeating: nil, count: metainfos.count))
        let failures = Mutex(SeedFailures())
        // Set when the process runs out of what all sessions share: every session stops.
        let exhausted = Atomic<Bool>(false)
        var threads: [JoinableThread] = []
        for (index, metainfo) in metainfos.enumerated() {
            var options = DownloadOptions(
                downloadDirectory: data, peers: peers.compactMap { SocketAddress($0) })
            options.seedWhenComplete = true
            sharing.apply(to: &options)
            // Within the process-wide limits below, each torrent has its own.
            options.maximumUploadRateBytesPerSecond =
                LimitParsing.rateBytesPerSecond(maxUploadRatePerTorrent) ?? 0
            options.maximumDownloadRateBytesPerSecond =
                LimitParsing.rateBytesPerSecond(maxDownloadRatePerTorrent) ?? 0
            options.sharedConnectionBudget = connections
            // Trackers hand out the router's port: that is where peers for this torrent get in.
            options.announcedPort = router.boundAddress.port
            options.sharedUploadLimiter = uploadLimiter
            options.sharedDownloadLimiter = downloadLimiter
            let inbox = IncomingInbox()
            options.incomingInbox = inbox
            router.register(metainfo.wireInfoHash, inbox: inbox)
            let name = metainfo.name
            let session = UncheckedSession(
                DownloadSession(metainfo: metainfo, options: options) { log("\(name): \($0)") })
            let shouldStop = {
                stopRequested.load(ordering: .relaxed) || exhausted.load(ordering: .relaxed)
            }
            do {
                threads.append(
                    try JoinableThread {
                        do throws(DownloadError) {
                            _ = try session.value.run(shouldStop: shouldStop) { status in
                                statuses.withLock { $0[index] = status }
                            }
                            log("\(name): stopped")
                        } catch {
                            if error.exhaustsProcessResources { exhausted.store(true, ordering: .relaxed) }
                            failures.withLock { $0.record("\(name): \(error)") }
                        }
                        finished.add(1, ordering: .relaxed)
                    })
            } catch {
                inbox.close()
                exhausted.store(true, ordering: .relaxed)
                let message =
                    "cannot start a thread for \(name) (torrent \(index + 1) of \(metainfos.count)): "
                    + "\(error.errno); the thread limit is reached (`ulimit -u`, a pids cgroup, "
                    + "kernel.threads-max), and `seed` runs a thread per torrent"
                failures.withLock { $0.record(message) }
                finished.add(metainfos.count - index, ordering: .relaxed)
                break
            }
        }
        // Every session ends on Ctrl-C, on its own limits, or on an error.
        let count = metainfos.count
        var progress = ProgressLine(label: "seeding", quiet: sharing.quiet)
        var lastProgress = ContinuousClock.now
        router.run {
            if ContinuousClock.now - lastProgress >= .seconds(1) {
                lastProgress = ContinuousClock.now
                let current = statuses.withLock { $0.compactMap { $0 } }
                let uploaded = current.reduce(Int64(0)) { $0 + $1.uploadedPayloadBytes }
                progress.update(
                    done: uploaded, total: max(uploaded, 1),
                    rateBytesPerSecond: current.reduce(0) { $0 + $1.uploadRateBytesPerSecond },
                    extra:
                        "\(count) torrents, uploaded, peers \(current.reduce(0) { $0 + $1.connectedPeers })")
            }
            return finished.load(ordering: .relaxed) == count
        }
        for thread in threads { thread.join() }
        progress.finish()
        if let report = failures.withLock({ $0.report }) {
            printError("potluck: \(report)")
            if exhausted.load(ordering: .relaxed) {
                printError(
                    "potluck: stopped every torrent: the process ran out of descriptors, threads or memory")
            }
            throw ExitCode(1)
        }
        if stopRequested.load(ordering: .relaxed) { throw ExitCode(130) }
    }
}

/// Why sessions ended with an error: the first in full, then how many more, so that thousands of torrents
/// failing alike (a descriptor limit) print two lines rather than thousands.
private struct SeedFailures {
    private var first: String?
    private var others = 0

    mutating func record(_ message: String) {
        if first == nil { first = message } else { others += 1 }
    }

    var report: String? {
        guard let first else { return nil }
        return others == 0 ? first : "\(first) (and \(others) more torrents failed)"
    }
}

/// A session handed to the thread that runs it; nothing else touches it afterwards.
private struct UncheckedSession: @unchecked Sendable {
    let value: DownloadSession
    init(_ value: DownloadSession) { self.value = value }
}
