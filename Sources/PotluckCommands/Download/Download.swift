import ArgumentParser
import Engine
import Foundation
import Metainfo
import Synchronization
import URing

/// Set from the signal handler; the reactor looks at it on every pass (at least ten times a second).
private let stopRequested = Atomic<Bool>(false)

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a torrent from peers.",
        discussion: """
            Connects to every peer given with --peer at once, downloads rarest pieces first, verifies \
            every piece before writing it, and exits 0 once all pieces are verified on disk. Ctrl-C saves \
            resume data and exits; running the same command again resumes. Existing files without resume \
            data are checked first. (Trackers come in a later version; until then peers come from --peer.)
            """)

    @Argument(help: "The .torrent file.", completion: .file(extensions: ["torrent"]))
    var torrent: String

    @Option(name: .shortAndLong, help: "Download folder (default: the current folder).")
    var output: String = "."

    @Option(
        name: .customLong("peer"),
        help: "A peer to connect to, as HOST:PORT with a numeric address; repeatable.")
    var peers: [String] = []

    @Option(help: "Memory for pieces in flight, in MiB.")
    var pieceMemoryMiB: Int = 256

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    @Flag(help: "Log each peer event (connections, bans) to standard error.")
    var verbose = false

    func validate() throws {
        for peer in peers where SocketAddress(peer) == nil {
            throw ValidationError("--peer \(peer) is not HOST:PORT with a numeric IPv4 or [IPv6] address")
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
        if options.peers.isEmpty {
            printError("potluck: no peers: give at least one with --peer HOST:PORT")
            throw ExitCode(1)
        }

        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)

        let verbose = verbose
        let session = DownloadSession(metainfo: metainfo, options: options) { message in
            if verbose { printError(message) }
        }
        var progress = ProgressLine(label: "downloading", quiet: quiet)
        var checking = ProgressLine(label: "checking", quiet: quiet)
        let started = ContinuousClock.now
        let outcome: DownloadOutcome
        do {
            outcome = try session.run(shouldStop: { stopRequested.load(ordering: .relaxed) }) { status in
                switch status.phase {
                case .checking:
                    checking.update(done: status.checkedBytes, total: status.totalBytes)
                case .downloading, .finishing:
                    progress.update(
                        done: status.verifiedBytes, total: status.totalBytes,
                        rateBytesPerSecond: status.downloadRateBytesPerSecond,
                        extra: "peers \(status.connectedPeers)/\(status.knownPeers)")
                }
            }
        } catch {
            progress.finish()
            printError("potluck: \(error.description)")
            throw ExitCode(1)
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
        case .stalled(let reason):
            printError("potluck: the download stalled: \(reason)")
            throw ExitCode(1)
        }
    }
}
