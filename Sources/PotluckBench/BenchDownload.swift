import ArgumentParser
import Foundation
import Hashing

/// The leecher half of `bench compare`, with the defaults of the download issue's benchmark.
struct BenchDownload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Leecher comparison: Potluck, libtorrent, Transmission and aria2 from the same seeders.",
        discussion: """
            The leecher half of `potluck bench compare` (see its help), with a 1 GiB payload by default. \
            Needs root and the interop harness (Tests/Interop, which the build copies beside the binary; \
            or give --harness).
            """)

    @OptionGroup var options: SwarmOptions

    @Option(help: "libtorrent seeders.")
    var seeders: Int = 4

    @Option(
        parsing: .upToNextOption,
        help: "Clients to measure, in order (potluck, libtorrent, transmission, aria2).")
    var clients: [String] = ["potluck", "libtorrent", "transmission", "aria2"]

    func validate() throws {
        guard seeders >= 1 && seeders <= 16 else { throw ValidationError("--seeders must be in 1...16") }
        _ = try parseClients(clients, option: "--clients")
    }

    func run() throws {
        var options = options
        options.payloadMiB = options.payloadMiB ?? 1024
        try BenchCompare.execute(
            options, seeders: seeders, leechers: 0, clients: try parseClients(clients, option: "--clients"),
            seederClients: [], leech: true)
    }
}
