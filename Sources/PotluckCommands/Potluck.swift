import ArgumentParser
import Engine
import PotluckBench

/// The `potluck` command line: a thin layer over the library modules, one file per subcommand.
public struct Potluck: ParsableCommand {
    public static let version = potluckVersion

    public static let configuration = CommandConfiguration(
        commandName: "potluck",
        abstract: "A BitTorrent engine for Linux, on io_uring.",
        discussion: """
            Potluck downloads and seeds torrents with little CPU, and measures itself against other \
            clients. Run `potluck bench` with no arguments for a short self-measurement.
            """,
        version: version,
        subcommands: [Download.self, Seed.self, DaemonCommand.self, Create.self, Info.self, Bench.self],
        defaultSubcommand: nil
    )

    public init() {}
}
