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
        if quiet { arguments.append("--quiet") }
        if verbose { arguments.append("--verbose") }
        let download = try Download.parse(arguments)
        try download.run()
    }
}
