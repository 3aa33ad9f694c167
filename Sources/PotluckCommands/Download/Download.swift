import ArgumentParser
import CommandSupport
import Engine
import Foundation
import Metainfo
import Synchronization
import URing

/// Set from the signal handler; the reactor looks at it on every pass (at least ten times a second).
let stopRequested = Atomic<Bool>(false)

/// Ctrl-C and `kill` set `stopRequested`; a closed pipe is not fatal.
func installStopSignals() {
    signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGPIPE, SIG_IGN)
    // A parent that blocks signals (test runners, some supervisors) passes the mask on; Ctrl-C and
    // `kill` must still stop us cleanly.
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    sigaddset(&stopSignals, SIGINT)
    sigaddset(&stopSignals, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &stopSignals, nil)
}

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a torrent from peers.",
        discussion: """
            Announces to the torrent's trackers (HTTP and UDP, BEP 12 tiers) and connects to the peers they \
            name and to every peer given with --peer, all at once; downloads rarest pieces first, verifies \
            every piece before writing it, and exits 0 once all pieces are verified on disk. Ctrl-C saves \
            resume data and exits; running the same command again resumes. Existing files without resume \
            data are checked first. A private torrent gets peers only from its trackers and --peer.

            """ + FileSelectionOptions.discussion)

    @Argument(help: "The .torrent file.", completion: .file(extensions: ["torrent"]))
    var torrent: String

    @Option(name: .shortAndLong, help: "Download folder (default: the current folder).")
    var output: String = "."

    @Option(
        name: .customLong("peer"),
        help: "A peer to connect to, as HOST:PORT with a numeric address; repeatable.")
    var peers: [String] = []

    @Option(
        help: """
            Accept incoming connections on HOST:PORT (port 0: any free port). Default with trackers: \
            0.0.0.0:0, the port they are told; without trackers: none.
            """)
    var listen: String?

    @Flag(help: "Keep seeding after the download completes, until Ctrl-C (or --seed-ratio, --seed-time).")
    var seed = false

    @Option(
        name: .customLong("piece-memory-mib"),
        help: """
            Memory for pieces being downloaded, hashed and written, in MiB. It bounds how many pieces \
            are in progress at once: raise it for fast links with long round trips.
            """)
    var pieceMemoryMiB: Int = 64

    @Flag(
        help: """
            Reserve each file's full size before writing to it, instead of sparse files: less \
            fragmentation, and a full disk stops the download before any piece of that file is fetched.
            """)
    var preallocate = false

    @OptionGroup var sharing: SharingOptions

    @OptionGroup(title: "Files and order") var selection: FileSelectionOptions

    func validate() throws {
        if let listen, SocketAddress(listen) == nil {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        for peer in peers where SocketAddress(peer) == nil {
            throw ValidationError("--peer \(peer) is not HOST:PORT with a numeric IPv4 or [IPv6] address")
        }
        if (sharing.seedRatio != nil || sharing.seedTime != nil) && !seed {
            throw ValidationError("--seed-ratio and --seed-time apply with --seed")
        }
        guard pieceMemoryMiB >= 16 && pieceMemoryMiB <= 65536 else {
            throw ValidationError("--piece-memory-mib must be between 16 and 65536")
        }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: torrent) else {
            printError("potluck: cannot read \(torrent)")
            throw ExitCode(1)
        }
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(bytes: Array(data))
        } catch {
            printError("potluck: \(torrent) is not a valid torrent: \(error)")
            throw ExitCode(1)
        }
        var options = DownloadOptions(
            downloadDirectory: output, peers: peers.compactMap { SocketAddress($0) })
        options.pieceMemoryBytes = pieceMemoryMiB << 20
        options.listenAddress = listen.flatMap { SocketAddress($0) }
        options.seedWhenComplete = seed
        options.preallocateFiles = preallocate
        try selection.apply(to: &options, metainfo: metainfo)
        sharing.apply(to: &options)
        let hasTrackers = !sharing.noTrackers && !metainfo.trackers.isEmpty
        if hasTrackers && options.listenAddress == nil {
            // Trackers hand our address to other peers: announce a port that is really open.
            options.listenAddress = SocketAddress("0.0.0.0:0")
        }
        if options.peers.isEmpty && options.listenAddress == nil && !hasTrackers {
            printError(
                "potluck: no peers: the torrent names no tracker (or --no-trackers was given); give at "
                    + "least one peer with --peer HOST:PORT, or --listen for incoming ones")
            throw ExitCode(1)
        }

        installStopSignals()

        let verbose = sharing.verbose
        var engineOptions = EngineOptions()
        // One torrent: one reactor, with every core's hashing worker.
        engineOptions.reactors = 1
        engineOptions.namesTorrentsInLog = false
        engineOptions.log = { message in if verbose { printError(message) } }
        let engine: Engine
        let id: TorrentID
        do {
            engine = try Engine(options: engineOptions)
            id = try engine.add(metainfo, options: options)
        } catch {
            printError("potluck: \(error)")
            throw ExitCode(1)
        }
        var progress = ProgressLine(label: "downloading", quiet: sharing.quiet)
        var checking = ProgressLine(label: "checking", quiet: sharing.quiet)
        let started = ContinuousClock.now
        var announcedListening = false
        var statusesDrawn = 0
        var stopping = false
        var snapshot = engine.snapshot(id)
        while let current = snapshot, current.isLive {
            if !stopping && stopRequested.load(ordering: .relaxed) {
                stopping = true
                try? engine.pause(id)
            }
            if let status = current.status, current.statusReports != statusesDrawn {
                statusesDrawn = current.statusReports
                if !announcedListening, let address = status.listenAddress {
                    announcedListening = true
                    printError("listening for peers on \(address)")
                }
                // The first second's line would say nothing (0 %, trackers still starting): wait for it.
                let quietStart = status.phase != .checking && ContinuousClock.now - started < .seconds(1)
                switch quietStart ? nil : status.phase {
                case nil:
                    break
                case .checking:
                    checking.update(done: status.checkedBytes, total: status.totalBytes)
                case .seeding:
                    progress.update(
                        done: status.uploadedPayloadBytes, total: max(status.uploadedPayloadBytes, 1),
                        rateBytesPerSecond: status.uploadRateBytesPerSecond,
                        extra: "seeding, uploaded, peers \(status.connectedPeers)"
                            + (status.trackerState.map { ", " + Self.short($0) } ?? ""))
                case .downloading:
                    progress.update(
                        done: status.verifiedWantedBytes, total: status.wantedBytes,
                        rateBytesPerSecond: status.downloadRateBytesPerSecond,
                        extra: "peers \(status.connectedPeers)/\(status.knownPeers)"
                            + (status.trackerState.map { "  " + Self.short($0) } ?? ""))
                }
            }
            usleep(100_000)
            snapshot = engine.snapshot(id)
        }
        engine.shutdown()
        let outcome: DownloadOutcome
        switch snapshot?.ended {
        case .success(let value): outcome = value
        case .failure(let error):
            progress.finish()
            printError("potluck: \(error.description)")
            throw ExitCode(1)
        case nil:
            outcome = .interrupted
        }
        progress.finish()
        let elapsed = seconds(ContinuousClock.now - started)
        switch outcome {
        case .completed:
            print(
                "completed \(metainfo.name): \(Format.size(metainfo.totalLength)) in \(Format.fixed(elapsed, 1)) s"
            )
        case .interrupted:
            printError("stopped; resume data saved. Run the same command again to continue.")
            throw ExitCode(130)
        }
    }

    /// A tracker state cut to fit the progress line (errors can carry long messages).
    static func short(_ text: String) -> String {
        text.count <= 60 ? text : String(text.prefix(57)) + "..."
    }
}
