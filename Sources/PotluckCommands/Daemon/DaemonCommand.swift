import ArgumentParser
import CommandSupport
import Foundation
import Logging
import PotluckDaemon
import Synchronization
import TransmissionRPC
import URing

/// Set by SIGHUP: the daemon reads its settings file again.
let reloadRequested = Atomic<Bool>(false)

func installReloadSignal() {
    signal(SIGHUP) { _ in reloadRequested.store(true, ordering: .relaxed) }
    var reloadSignal = sigset_t()
    sigemptyset(&reloadSignal)
    sigaddset(&reloadSignal, SIGHUP)
    pthread_sigmask(SIG_UNBLOCK, &reloadSignal, nil)
}

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

            --config reads a JSON file with Transmission's settings.json key names (rpc-port, \
            rpc-whitelist, download-dir, watch-dir, speed-limit-up, ...; see the README); flags win over \
            it. SIGHUP reads it again and applies the whitelist, log level, watch folder, on-completion \
            script and limits; a broken file is logged and changes nothing. GET /metrics serves \
            Prometheus' text format to the whitelisted addresses.

            The RPC answers loopback clients only unless --rpc-whitelist says otherwise. When \
            /usr/share/transmission/web exists (Debian's transmission-common), a browser finds the \
            Transmission web client at http://HOST:PORT/transmission/web/.

            Examples:
              potluck daemon --state ~/.potluck --download-dir ~/Downloads
              potluck daemon --state ~/.potluck --download-dir /srv/media --incomplete-dir /srv/partial
              transmission-remote 9091 -a movie.torrent     (then -l to list, -t 1 -i)
              potluck daemon --state /var/lib/potluck --download-dir /srv/torrents \\
                  --rpc 0.0.0.0:9091 --rpc-whitelist '192.168.1.*' \\
                  --rpc-username admin --rpc-password-file /etc/potluck/rpc-password \\
                  --watch /srv/torrents/watch
            """)

    @Option(help: "The folder for torrents, their settings and resume data (created if missing).")
    var state: String

    @Option(
        help: "A JSON settings file, keys as in Transmission's settings.json (see README); SIGHUP reloads it."
    )
    var config: String?

    @Option(
        help:
            "Where torrents' data goes unless torrent-add names another folder (or download-dir in --config)."
    )
    var downloadDir: String?

    @Option(
        help: """
            Download into this folder and move each torrent's files to its download folder once \
            complete (Transmission's incomplete-dir; session-set can change or turn it off). A torrent \
            added with its files already in its download folder seeds them from there.
            """)
    var incompleteDir: String?

    @Option(
        name: .customLong("allowed-dirs"),
        help: """
            Comma-separated folders that clients may put data in (torrent-add's download-dir, session-set's \
            download-dir and incomplete-dir, torrent-set-location), inside them included; anything else \
            is refused. Default: anywhere. Example: --allowed-dirs /srv/media,/srv/partial
            """)
    var allowedDirs: String?

    @Option(help: "Serve the RPC and the web client on HOST:PORT (default: 127.0.0.1:9091).")
    var rpc: String?

    @Option(help: "Accept peers on HOST:PORT, for every torrent (default: 0.0.0.0:51413).")
    var listen: String?

    @Option(help: "Add every .torrent file dropped into this folder (renamed .added once added).")
    var watch: String?

    @Option(help: "Run this program (not through a shell) when a torrent finishes downloading.")
    var onComplete: String?

    @Option(help: "Require HTTP Basic authentication with this user name (with --rpc-password-file).")
    var rpcUsername: String?

    @Option(help: "A file whose first line is the RPC password.")
    var rpcPasswordFile: String?

    @Option(
        help:
            "Client addresses the RPC serves: comma-separated, * as a wildcard ('*': anyone; default: loopback)."
    )
    var rpcWhitelist: String?

    @Option(help: "The Transmission web client's folder.")
    var webUi: String = "/usr/share/transmission/web"

    @Option(
        help: ArgumentHelp(
            "What port-test asks whether the peer port is reachable from outside: a URL whose {port} is "
                + "replaced by the port, answering 1 or 0 (empty: port-test is refused).",
            valueName: "url"))
    var portTestUrl: String = PortCheck.defaultURL

    @Option(help: "Reactor threads that host the torrents (default: one per core).")
    var reactors: Int?

    @Option(
        name: .customLong("rest-after"),
        help: ArgumentHelp(
            "Seconds without a peer after which a seed rests (0: never).",
            discussion: """
                A resting seed gives its session back and keeps its place: a peer that connects wakes \
                it, and so do its trackers' next announce and any command that needs it.
                """,
            valueName: "seconds"))
    var restAfter = 30

    @OptionGroup var dht: DHTCommandOptions

    @OptionGroup var lsd: LocalDiscoveryCommandOptions

    @Option(
        help:
            "Log events at this level and above: trace, debug, info, notice, warning or error (default: info)."
    )
    var logLevel: String?

    @Flag(help: "Log what the engine does for each torrent (--log-level debug).")
    var verbose = false

    func validate() throws {
        if let listen, Self.hostAndPort(listen).flatMap({ Self.socketAddress($0.host, $0.port) }) == nil {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        if let rpc, Self.hostAndPort(rpc) == nil {
            throw ValidationError("--rpc \(rpc) is not HOST:PORT (such as 127.0.0.1:9091 or [::1]:9091)")
        }
        guard (rpcUsername == nil) == (rpcPasswordFile == nil) else {
            throw ValidationError("--rpc-username and --rpc-password-file go together")
        }
        if let reactors, !(1...256).contains(reactors) {
            throw ValidationError("--reactors must be between 1 and 256")
        }
        guard restAfter >= 0 else { throw ValidationError("--rest-after must be 0 or more seconds") }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError(
                "--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error")
        }
    }

    /// The settings given on the command line: they win over the settings file's, at start and at
    /// every reload.
    var commandLineSettings: DaemonSettings {
        var settings = DaemonSettings()
        if let rpc, let (host, port) = Self.hostAndPort(rpc) {
            settings.rpcBindAddress = host
            settings.rpcPort = port
        }
        if let listen, let (host, port) = Self.hostAndPort(listen) {
            settings.bindAddress = host
            settings.peerPort = port
        }
        settings.downloadDirectory = downloadDir.map(Self.absolute)
        if let incompleteDir {
            settings.session[.incompleteDirectory] = .string(Self.absolute(incompleteDir))
            settings.session[.incompleteDirectoryEnabled] = .bool(true)
        }
        if let watch {
            settings.watchDirectory = Self.absolute(watch)
            settings.watchDirectoryEnabled = true
        }
        if let onComplete {
            settings.onCompleteScript = Self.absolute(onComplete)
            settings.onCompleteScriptEnabled = true
        }
        if let rpcWhitelist {
            settings.rpcWhitelist = rpcWhitelist
            settings.rpcWhitelistEnabled = true
        }
        settings.logLevel = logLevel.flatMap(Logger.Level.init(rawValue:)) ?? (verbose ? .debug : nil)
        return settings
    }

    static func socketAddress(_ host: String, _ port: Int) -> SocketAddress? {
        SocketAddress(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
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
        var fileSettings = DaemonSettings()
        if let config {
            do {
                fileSettings = try DaemonSettings.load(from: config)
            } catch {
                printError("potluck: \(error)")
                throw ExitCode(1)
            }
        }
        let settings = fileSettings.overlaid(by: commandLineSettings)
        guard let downloadDirectory = settings.downloadDirectory else {
            printError("potluck: give --download-dir, or download-dir in the --config file")
            throw ExitCode(1)
        }
        guard
            let listenAddress = Self.socketAddress(
                settings.bindAddress ?? "0.0.0.0", settings.peerPort ?? 51413)
        else {
            printError("potluck: bind-address-ipv4 \(settings.bindAddress ?? "") is not a numeric address")
            throw ExitCode(1)
        }
        var configuration = DaemonConfiguration(
            stateDirectory: Self.absolute(state), downloadDirectory: downloadDirectory,
            listenAddress: listenAddress)
        configuration.rpcHost = settings.rpcBindAddress ?? "127.0.0.1"
        configuration.rpcPort = settings.rpcPort ?? 9091
        configuration.settings = settings
        configuration.settingsFile = config.map(Self.absolute)
        configuration.commandLineSettings = commandLineSettings
        configuration.reactors = reactors
        configuration.restIdleSeedsAfterSeconds = restAfter > 0 ? restAfter : nil
        if let allowedDirs {
            // The operator's own folders are allowed whatever the list says.
            var folders = allowedDirs.split(separator: ",").map { Self.absolute(String($0)) }
            folders.append(downloadDirectory)
            if let incomplete = settings.session[.incompleteDirectory]?.stringValue {
                folders.append(incomplete)
            }
            configuration.allowedFolders = AllowedFolders(folders)
        }
        configuration.dht = dht.engineOptions(statePath: Self.absolute(state) + "/dht.dat")
        configuration.localDiscovery = !lsd.noLSD
        configuration.webFolder = webUi
        configuration.portTestURL = portTestUrl.isEmpty ? nil : portTestUrl
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
        let threshold = DaemonLogHandler.Threshold(settings.effectiveLogLevel)
        configuration.logThreshold = threshold
        configuration.logger = Logger(label: "potluck") { DaemonLogHandler(label: $0, threshold: threshold) }
        if let config, !fileSettings.ignoredKeys.isEmpty {
            configuration.logger.notice(
                "settings file \(config): ignoring \(fileSettings.ignoredKeys.joined(separator: ", "))")
        }

        installStopSignals()
        installReloadSignal()
        do {
            let daemon = try Daemon(configuration: configuration)
            try daemon.run(
                shouldStop: { stopRequested.load(ordering: .relaxed) },
                shouldReload: { reloadRequested.exchange(false, ordering: .relaxed) })
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
