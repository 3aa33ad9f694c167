import ArgumentParser
import Engine
import Foundation
import Metainfo
import URing

struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seed a torrent from data already on disk.",
        discussion: """
            Checks the data (or trusts valid resume data), then accepts peers on --listen and uploads to \
            them with the tit-for-tat choker, rotating fairly among interested peers, until Ctrl-C. Pieces \
            that fail the check are downloaded first from any --peer given.
            """)

    @Argument(help: "The .torrent file.", completion: .file(extensions: ["torrent"]))
    var torrent: String

    @Option(help: "The folder that holds the torrent's data.")
    var data: String = "."

    @Option(help: "Accept peers on HOST:PORT.")
    var listen: String = "0.0.0.0:6881"

    @Option(name: .customLong("peer"), help: "A peer to connect to as well; repeatable.")
    var peers: [String] = []

    @Option(help: "Upload limit for all peers together, bytes per second (500K, 2M; 0: none).")
    var maxUploadRate: String = "0"

    @Option(help: "Download limit (for pieces that failed the check), bytes per second (0: none).")
    var maxDownloadRate: String = "0"

    @Option(help: "Stop once uploaded bytes reach R times the torrent's size.")
    var seedRatio: Double?

    @Option(help: "Stop after seeding this long (90s, 15m, 2h, or seconds).")
    var seedTime: String?

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    @Flag(help: "Log each peer event to standard error.")
    var verbose = false

    func validate() throws {
        guard SocketAddress(listen) != nil else {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        for peer in peers where SocketAddress(peer) == nil {
            throw ValidationError("--peer \(peer) is not HOST:PORT with a numeric address")
        }
    }

    func run() throws {
        var arguments =
            [torrent, "-o", data, "--listen", listen, "--seed"] + peers.flatMap { ["--peer", $0] }
        arguments += ["--max-upload-rate", maxUploadRate, "--max-download-rate", maxDownloadRate]
        if let seedRatio { arguments += ["--seed-ratio", "\(seedRatio)"] }
        if let seedTime { arguments += ["--seed-time", seedTime] }
        if quiet { arguments.append("--quiet") }
        if verbose { arguments.append("--verbose") }
        let download = try Download.parse(arguments)
        try download.run()
    }
}
