import Engine
import Foundation
internal import Hummingbird
import Locking
public import Logging
import TransmissionRPC
import URing

/// How `potluck daemon` is set up.
public struct DaemonConfiguration: Sendable {
    /// Where torrents, their settings and resume data are kept.
    public var stateDirectory: String
    /// Where torrents' data goes unless torrent-add names another folder.
    public var downloadDirectory: String
    /// The RPC's (and web client's) address.
    public var rpcHost = "127.0.0.1"
    public var rpcPort = 9091
    /// Where peers connect, for every torrent.
    public var listenAddress: SocketAddress
    /// When set, every HTTP request needs these.
    public var credentials: AccessPolicy.Credentials?
    /// Reactor threads (nil: one per core).
    public var reactors: Int?
    /// Seeds without a peer for this long rest (see `EngineOptions.restIdleSeedsAfterSeconds`); nil: never.
    public var restIdleSeedsAfterSeconds: Int? = 30
    /// The Transmission web client's files; nil or a missing folder: no web client.
    public var webFolder: String? = "/usr/share/transmission/web"
    /// What `port-test` asks, `{port}` replaced by the peer port (see `PortCheck`); nil: refused.
    public var portTestURL: String? = PortCheck.defaultURL
    /// The daemon's log; the engine's own lines (what it does for each torrent) go there at `debug`.
    public var logger = Logger(label: "potluck.daemon") { _ in SwiftLogNoOpLogHandler() }
    /// The log's level, which a reloaded settings file may change.
    public var logThreshold: DaemonLogHandler.Threshold?
    /// What may change while the daemon runs (address whitelist, watch folder, log level, on-completion
    /// script, the session's limits): the settings file's, with the command line's over them.
    public var settings = DaemonSettings()
    /// The settings file that SIGHUP reads again, and the command line's settings, which win over it
    /// at every reload.
    public var settingsFile: String?
    /// The DHT (nil: off); its table is kept in the state folder unless `statePath` says otherwise.
    public var dht: DHTOptions?
    /// Local Service Discovery (BEP 14) for the public torrents.
    public var localDiscovery = false
    public var commandLineSettings = DaemonSettings()
    /// Where clients may put data (empty: anywhere).
    public var allowedFolders = AllowedFolders()

    public init(stateDirectory: String, downloadDirectory: String, listenAddress: SocketAddress) {
        self.stateDirectory = stateDirectory
        self.downloadDirectory = downloadDirectory
        self.listenAddress = listenAddress
    }
}

/// Why the daemon could not start.
public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
}

/// `potluck daemon`: one engine for every torrent, the Transmission RPC over HTTP, the state folder,
/// and the watch folder.
///
/// `run` serves until asked to stop, then stops every torrent cleanly (resume data saved, trackers
/// told), saves the daemon's state and returns.
public final class Daemon {
    let configuration: DaemonConfiguration
    let engine: Engine
    let backend: EngineBackend
    let state: StateFolder
    let metrics = DaemonMetrics()
    let live: LiveSettings

    /// Opens the state folder, starts the engine and restores every kept torrent.
    public init(configuration: DaemonConfiguration) throws(DaemonError) {
        self.configuration = configuration
        do {
            state = try StateFolder(root: configuration.stateDirectory)
            try FileManager.default.createDirectory(
                atPath: configuration.downloadDirectory, withIntermediateDirectories: true)
        } catch {
            throw DaemonError(description: "\(error.localizedDescription)")
        }
        var options = EngineOptions()
        if let reactors = configuration.reactors { options.reactors = reactors }
        options.restIdleSeedsAfterSeconds = configuration.restIdleSeedsAfterSeconds
        options.listenAddress = configuration.listenAddress
        // A peer that comes while the kept torrents are restored waits for them (`run`).
        options.routesPeersAtStart = false
        let logger = configuration.logger
        options.log = { logger.debug("\($0)") }
        // The backend is made after the engine; moves reach it through this.
        let movedFiles = MovedFilesRelay()
        options.onMoved = { id, target in movedFiles.backend?.filesMoved(id, to: target) }
        let overrides = state.loadSessionSettings()
        // The operator's settings file has the last word over what clients set before.
        var session = configuration.settings.sessionChanges.applied(
            to: EngineBackend.sessionSettings(
                laying: overrides,
                over: SessionSettings(
                    downloadDirectory: configuration.downloadDirectory,
                    configDirectory: configuration.stateDirectory)))
        // The engine starts with the kept session's limits; session-set and a reload change them later.
        options.maximumUploadRateBytesPerSecond = session.uploadRateBytesPerSecond
        options.maximumDownloadRateBytesPerSecond = session.downloadRateBytesPerSecond
        options.maximumConnections = session.peerLimitGlobal
        options.dht = configuration.dht
        options.localDiscovery = configuration.localDiscovery
        if options.dht != nil && options.dht?.statePath == nil {
            options.dht?.statePath = configuration.stateDirectory + "/dht.dat"
        }
        do {
            engine = try Engine(options: options)
        } catch {
            throw DaemonError(description: "\(error)")
        }
        session.peerPort = Int(engine.boundAddress?.port ?? configuration.listenAddress.port)
        // What the engine does not do yet, so that clients do not show it as on, and what only the
        // command line turns on or off.
        session.dhtEnabled = engine.dht != nil
        session.lpdEnabled = engine.localDiscovery != nil
        session.utpEnabled = false
        session.portForwardingEnabled = false
        backend = EngineBackend(
            engine: engine, state: state, session: session, overrides: overrides, metrics: metrics,
            allowedFolders: configuration.allowedFolders, portTestURL: configuration.portTestURL,
            logger: configuration.logger)
        movedFiles.backend = backend
        live = LiveSettings(
            policy: AccessPolicy(
                credentials: configuration.credentials,
                addressWhitelist: configuration.settings.effectiveWhitelist.map(WildcardPattern.list)),
            onCompleteScript: configuration.settings.effectiveOnCompleteScript)
    }

    /// Serves until `shouldStop` says so (polled every 100 ms) or a client sends session-close, then
    /// shuts down; reads the settings file again whenever `shouldReload` says so. Throws when the RPC
    /// address cannot be served.
    public func run(
        shouldStop: @escaping @Sendable () -> Bool, shouldReload: @escaping @Sendable () -> Bool = { false }
    ) throws(DaemonError) {
        let logger = configuration.logger
        let started = Date()
        let restored = backend.restore()
        engine.startRoutingPeers()
        let seconds = String(format: "%.2f", Date().timeIntervalSince(started))
        logger.notice(
            "restored \(restored) torrents in \(seconds) s; peers on \(engine.boundAddress.map { "\($0)" } ?? "?")"
        )
        let backend = self.backend
        let events = Task.detached { await backend.followEngineEvents() }
        let server = startServer()
        var applied = configuration.settings
        var watch = openWatchFolder(applied.effectiveWatchDirectory)
        var failure: String?
        var lastBooks = Date.distantPast
        var lastCheckpoint = Date()
        while !shouldStop() && !backend.closeRequested.load(ordering: .relaxed) {
            if let problem = server.failure.reason.withLock({ $0 }) {
                failure = problem
                break
            }
            if shouldReload() { reloadSettings(applied: &applied, watch: &watch) }
            if Date().timeIntervalSince(lastBooks) >= 1 {
                lastBooks = Date()
                for torrent in backend.keepBooks() {
                    if let program = live.onCompleteScript {
                        CompletionScript.run(program, for: torrent, logger: logger)
                    }
                }
                for line in watch?.scan(into: backend) ?? [] { logger.info("\(line)") }
                server.spareReply.letGo(ifUnusedFor: .seconds(10))
            }
            if Date().timeIntervalSince(lastCheckpoint) >= Double(EngineBackend.checkpointSeconds) {
                lastCheckpoint = Date()
                backend.saveCheckpoint()
            }
            usleep(100_000)
        }
        logger.notice("stopping every torrent")
        server.task.cancel()
        engine.shutdown()
        backend.saveAll()
        _ = events
        logger.notice("stopped")
        if let failure { throw DaemonError(description: failure) }
    }

    /// The HTTP server, running on Swift's concurrency pool.
    private struct Server {
        let task: Task<Void, Never>
        let failure: ServerFailure
        let spareReply: SpareReplyMemory
    }

    /// Why the HTTP server stopped, if it failed.
    private final class ServerFailure: Sendable {
        let reason = Lock<String?>(nil)
    }

    private func startServer() -> Server {
        var endpoint = RPCEndpoint(
            policy: live.policy, backend: backend, identity: ServerIdentity(potluckVersion: potluckVersion))
        let metrics = self.metrics
        endpoint.callAnswered = { metrics.countCall(method: $0, succeeded: $1) }
        let webFolder = configuration.webFolder.flatMap {
            FileManager.default.fileExists(atPath: $0 + "/index.html") ? $0 : nil
        }
        // Hummingbird's own messages are left out: a failure to serve ends `run` and is reported by the
        // daemon, and stopping the server by cancelling it would log an error otherwise.
        var httpLogger = Logger(label: "potluck.daemon.http")
        httpLogger.logLevel = .critical
        let spareReply = SpareReplyMemory()
        let responder = RPCResponder(
            endpoint: endpoint, live: live, metrics: metrics, webFolder: webFolder, spareReply: spareReply,
            logger: httpLogger)
        let logger = configuration.logger
        let host = configuration.rpcHost
        let port = configuration.rpcPort
        let application = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let address = channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" }
                let web = webFolder == nil ? "" : "; web client at /transmission/web/"
                logger.notice("RPC on http://\(address ?? "\(host):\(port)")/transmission/rpc\(web)")
            },
            logger: httpLogger)
        let failure = ServerFailure()
        let task = Task.detached {
            do {
                try await application.run()
            } catch {
                failure.reason.withLock { $0 = "cannot serve the RPC on \(host):\(port): \(error)" }
            }
        }
        return Server(task: task, failure: failure, spareReply: spareReply)
    }
}

/// Hands the engine's "files moved" calls to the backend, which exists only after the engine.
private final class MovedFilesRelay: Sendable {
    private let target = Lock<EngineBackend?>(nil)

    var backend: EngineBackend? {
        get { target.withLock { $0 } }
        set { target.withLock { $0 = newValue } }
    }
}
