import ArgumentParser

/// The Local Service Discovery option of `download`, `seed` and `daemon`.
struct LocalDiscoveryCommandOptions: ParsableArguments {
    @Flag(
        name: .customLong("no-lsd"),
        help: """
            No Local Service Discovery (BEP 14): torrents are neither announced to the LAN by multicast \
            (239.192.152.143:6771) nor found there.
            """)
    var noLSD = false

    /// The same option as arguments, to hand on to another command.
    var arguments: [String] { noLSD ? ["--no-lsd"] : [] }
}
