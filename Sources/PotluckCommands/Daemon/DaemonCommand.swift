import ArgumentParser
import CommandSupport
import Foundation
import Logging
import PotluckDaemon
import TransmissionRPC
import URing

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run as a service that Transmission's remote tools control.",
        discussion: """
            Holds every torrent in one engine and speaks Transmission's RPC (version 17, as Transmission \
            4.0.6) on --rpc, so transmission-remote, the Transmission web client, the transmission-rpc \
            Python library, Sonarr and Radarr can add, list, start, stop and remove torrents. Torrents \
            download, then seed.

            Nothing is lost: each torrent's .torrent file and settings are written to --state (written \
            whole, then renamed) before the RPC answers, with its resume data beside them; at start every \
            torrent comes back as it was (paused ones stay paused) without checking what resume data \
            vouches for. SIGTERM or Ctrl-C saves resume data, tells trackers, and exits 0.

            The RPC answers loopback clients only unless --rpc-whitelist says otherwise. When \
            /usr/share/transmission/web exists (Debian's transmission-common), a browser finds the \
            Transmission web client at http://HOST:PORT/transmission/web/.

            Examples:
              potluck daemon --state ~/.potluck --download-dir ~/Downloads
              transmission-remote 9091 -a movie.torrent     (then -l to list, -t 1 -i)
              potluck daemon --state /var/lib/potluck --download-dir /srv/torrents \\
                  --rpc 0.0.0.0:9091 --rpc-whitelist '192.168.1.*' \\
                  --rpc-username admin --rpc-password-file /etc/potluck/rpc-password \\
                  --watch /srv/torrents/watch
            """)

    @Option(help: "The folder for torrents, their settings and resume data (created if missing).")
    var state: String

    @Option(help: "Where torrents' data goes unless torrent-add names another folder.")
    var downloadDir: String

    @Option(help: "Serve the RPC and the web client on HOST:PORT.")
    var rpc: String = "127.0.0.1:9091"

    @Option(help: "Accept peers on HOST:PORT, for every torrent.")
    var listen: String = "0.0.0.0:51413"

    @Option(help: "Add every .torrent file dropped into this folder (renamed .added once added).")
    var watch: String?

    @Option(help: "Require HTTP Basic authentication with this user name (with --rpc-password-file).")
    var rpcUsername: String?

    @Option(help: "A file whose first line is the RPC password.")
    var rpcPasswordFile: String?

    @Option(help: "Client addresses the RPC serves: comma-separated, * as a wildcard ('*': anyone).")
    var rpcWhitelist: String = "127.0.0.1,::1"

    @Option(help: "The Transmission web client's folder.")
    var webUi: String = "/usr/share/transmission/web"

    @Option(help: "Reactor threads that host the torrents (default: one per core).")
    var reactors: Int?

    @Option(help: "Log events at this level and above: trace, debug, info, notice, warning or error.")
    var logLevel: String?

    @Flag(help: "Log what the engine does for each torrent (--log-level debug).")
    var verbose = false

    func validate() throws {
        guard SocketAddress(listen) != nil else {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        guard Self.hostAndPort(rpc) != nil else {
            throw ValidationError("--rpc \(rpc) is not HOST:PORT (such as 127.0.0.1:9091 or [::1]:9091)")
        }
        guard (rpcUsername == nil) == (rpcPasswordFile == nil) else {
            throw ValidationError("--rpc-username and --rpc-password-file go together")
        }
        if let reactors, !(1...256).contains(reactors) {
            throw ValidationError("--reactors must be between 1 and 256")
        }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError(
                "--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error")
        }
    }

    /// `host:port` or `[v6]:port`.
    static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func run() throws {
        let (host, port) = Self.hostAndPort(rpc)!
        var configuration = DaemonConfiguration(
            stateDirectory: Self.absolute(state), downloadDirectory: Self.absolute(downloadDir),
            listenAddress: SocketAddress(listen)!)
        configuration.rpcHost = host
        configuration.rpcPort = port
        configuration.watchDirectory = watch.map(Self.absolute)
        configuration.reactors = reactors
        configuration.webFolder = webUi
        configuration.addressWhitelist = rpcWhitelist == "*" ? nil : rpcWhitelist
        if let rpcUsername, let rpcPasswordFile {
            guard let text = try? String(contentsOfFile: rpcPasswordFile, encoding: .utf8),
                let password = text.split(separator: "\n", omittingEmptySubsequences: false).first,
                !password.isEmpty
            else {
                printError("potluck: cannot read a password from \(rpcPasswordFile)")
                throw ExitCode(1)
            }
            configuration.credentials = AccessPolicy.Credentials(
                username: rpcUsername, password: String(password))
        }
        let threshold = DaemonLogHandler.Threshold(
            logLevel.flatMap(Logger.Level.init(rawValue:)) ?? (verbose ? .debug : .info))
        configuration.logger = Logger(label: "potluck") { DaemonLogHandler(label: $0, threshold: threshold) }

        installStopSignals()
        do {
            let daemon = try Daemon(configuration: configuration)
            try daemon.run { stopRequested.load(ordering: .relaxed) }
        } catch {
            configuration.logger.critical("\(error)")
            throw ExitCode(1)
        }
    }

    /// Paths are kept in the state folder and reported over RPC, so they are made absolute.
    private static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
