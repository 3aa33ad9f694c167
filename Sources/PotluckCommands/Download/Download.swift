import ArgumentParser
import CommandSupport
import Engine
import Foundation
import Metainfo
import Synchronization
import TorrentModel
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
        commandName: "download",
        abstract: "Download a torrent (a .torrent file or a magnet link) from peers.",
        discussion: """
            A magnet link's info dictionary is fetched first from the peers it names (x.pe), those given \
            with --peer, its trackers (tr) name and the DHT finds, and checked against its infohash (a v2-only link's \
            piece layers come from the peers too, BEP 52): potluck download 'magnet:?xt=urn:btih:…&x.pe=10.0.0.2:6881' \
            -o ~/Downloads --save-torrent t.torrent. Then, as for a file: \
            announces to the torrent's trackers (HTTP and UDP, BEP 12 tiers) and the DHT (BEP 5; --no-dht \
            turns it off, --dht-bootstrap names the nodes to join through) and connects to the peers they \
            name and to every peer given with --peer, all at once; downloads rarest pieces first, verifies \
            every piece before writing it, and exits 0 once all pieces are verified on disk. Ctrl-C saves \
            resume data and exits; running the same command again resumes. Existing files without resume \
            data are checked first. A private torrent gets peers only from its trackers and --peer.

            Web seeds (BEP 19): the HTTP(S) servers the torrent lists in its url-list are used like \
            seeds unless --no-web-seeds is given; --web-seed adds more. Their pieces are checked like \
            any other; one that sends a bad piece, ignores byte ranges or shows an https certificate \
            that cannot be trusted for its host is dropped, one that is busy or drops the connection is \
            asked again later. For example:

              potluck download linux.torrent --web-seed http://mirror.example/pub/
              potluck download a.torrent --web-seed https://10.0.0.5/ --web-seed-ca ca.pem


            """ + FileSelectionOptions.discussion)

    @Argument(
        help: "The .torrent file, or a magnet link (quote it).", completion: .file(extensions: ["torrent"]))
    var torrent: String

    @Option(
        name: .customLong("save-torrent"),
        help: "For a magnet link: write the .torrent file here once its metadata has arrived.")
    var saveTorrent: String?

    @Option(name: .shortAndLong, help: "Download folder (default: the current folder).")
    var output: String = "."

    @Option(
        name: .customLong("incomplete-dir"),
        help: """
            Download into this folder, and move the files to the download folder (-o) once every \
            wanted piece is verified (a seed goes on seeding from there). A rename on one file system, \
            a copy across two; a move cut short is finished by the same command run again. Example: \
            potluck download t.torrent --incomplete-dir /srv/partial -o /srv/media
            """)
    var incompleteDirectory: String?

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
    var pieceMemoryMiB: Int = 32

    @Flag(
        help: """
            Reserve each file's full size before writing to it, instead of sparse files: less \
            fragmentation, and a full disk stops the download before any piece of that file is fetched.
            """)
    var preallocate = false

    @Flag(help: "Do not fetch from the web seeds the torrent lists (its url-list).")
    var noWebSeeds = false

    @Option(
        name: .customLong("web-seed"),
        help: """
            An http or https URL serving the torrent's files, besides the torrent's own web seeds: \
            the file itself for a single-file torrent, the folder holding the torrent's folder \
            otherwise (a URL ending in / gets the torrent's name added); repeatable.
            """)
    var webSeeds: [String] = []

    @Option(
        name: .customLong("web-seed-ca"),
        help: "A PEM file of CA certificates to trust for https web seeds, besides the system's.")
    var webSeedCAFile: String?

    @OptionGroup var sharing: SharingOptions

    @OptionGroup var dht: DHTCommandOptions

    @OptionGroup var lsd: LocalDiscoveryCommandOptions

    @OptionGroup(title: "Files and order") var selection: FileSelectionOptions

    func validate() throws {
        if let listen, SocketAddress(listen) == nil {
            throw ValidationError("--listen \(listen) is not HOST:PORT with a numeric address")
        }
        for url in webSeeds
        where !url.lowercased().hasPrefix("http://") && !url.lowercased().hasPrefix("https://") {
            throw ValidationError("--web-seed \(url) is not an http:// or https:// URL")
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

    /// What is to be downloaded: a torrent's metainfo, or a magnet link to fetch it by.
    enum Source {
        case metainfo(Metainfo)
        case magnet(MagnetLink)

        /// BEP 27: a private torrent's peers come only from its trackers.
        var isPrivate: Bool {
            if case .metainfo(let metainfo) = self { return metainfo.isPrivate }
            return false
        }
    }

    func readSource() throws -> Source {
        if torrent.lowercased().hasPrefix("magnet:") {
            do {
                return .magnet(try MagnetLink(parsing: torrent))
            } catch {
                printError("potluck: not a usable magnet link: \(error)")
                throw ExitCode(1)
            }
        }
        guard let data = FileManager.default.contents(atPath: torrent) else {
            printError("potluck: cannot read \(torrent)")
            throw ExitCode(1)
        }
        do {
            return .metainfo(try Metainfo(bytes: Array(data)))
        } catch {
            printError("potluck: \(torrent) is not a valid torrent: \(error)")
            throw ExitCode(1)
        }
    }

    func run() throws {
        let source = try readSource()
        if saveTorrent != nil, case .metainfo = source {
            printError("potluck: --save-torrent applies to a magnet link")
            throw ExitCode(1)
        }
        var options = DownloadOptions(
            downloadDirectory: startDirectory(for: source), peers: peers.compactMap { SocketAddress($0) })
        if incompleteDirectory != nil { options.completedDirectory = output }
        options.pieceMemoryBytes = pieceMemoryMiB << 20
        options.listenAddress = listen.flatMap { SocketAddress($0) }
        options.seedWhenComplete = seed
        options.preallocateFiles = preallocate
        options.useTorrentWebSeeds = !noWebSeeds
        options.extraWebSeeds = webSeeds
        options.webSeedCAFile = webSeedCAFile
        switch source {
        case .metainfo(let metainfo):
            try selection.apply(to: &options, metainfo: metainfo)
        case .magnet:
            // The files are known only once the metadata has arrived.
            guard !selection.choosesFiles else {
                printError(
                    "potluck: --only, --skip, --files and --priority need the torrent's file list: fetch it "
                        + "first with --save-torrent, then download the .torrent with them")
                throw ExitCode(1)
            }
            options.sequential = selection.sequential
            options.streamWindowBytes = (selection.streamWindowMiB ?? 0) << 20
        }
        sharing.apply(to: &options)
        let hasTrackers: Bool
        let hasLinkPeers: Bool
        switch source {
        case .metainfo(let metainfo):
            hasTrackers = !sharing.noTrackers && !metainfo.trackers.isEmpty
            hasLinkPeers = false
        case .magnet(let magnet):
            hasTrackers = !sharing.noTrackers && !magnet.trackers.isEmpty
            hasLinkPeers = !magnet.peers.isEmpty
        }
        let hasLocalDiscovery = !lsd.noLSD && !source.isPrivate
        if (hasTrackers || hasLocalDiscovery) && options.listenAddress == nil {
            // Trackers and LAN announces hand our address to other peers: announce a port really open.
            options.listenAddress = SocketAddress("0.0.0.0:0")
        }
        let hasDHT = !dht.noDHT && !source.isPrivate
        let torrentWebSeeds: [String]
        switch source {
        case .metainfo(let metainfo): torrentWebSeeds = metainfo.webSeeds
        case .magnet(let magnet): torrentWebSeeds = magnet.webSeeds
        }
        let hasWebSeeds = !webSeeds.isEmpty || (!noWebSeeds && !torrentWebSeeds.isEmpty)
        let hasSource = hasTrackers || hasLinkPeers || hasDHT || hasWebSeeds
        if options.peers.isEmpty && options.listenAddress == nil && !hasSource {
            printError(
                "potluck: no peers: the torrent names no tracker and no web seed (or they were turned off) and "
                    + "the DHT is off (--no-dht, or a private torrent); give at least one peer with --peer "
                    + "HOST:PORT, or --listen for incoming ones")
            throw ExitCode(1)
        }

        installStopSignals()

        let verbose = sharing.verbose
        var engineOptions = EngineOptions()
        // One torrent: one reactor, with every core's hashing worker.
        engineOptions.reactors = 1
        engineOptions.namesTorrentsInLog = false
        engineOptions.dht = dht.engineOptions(statePath: DHTCommandOptions.cacheStatePath)
        // The DHT's socket shares the peers' address and port, as other clients do.
        if let listenAddress = options.listenAddress { engineOptions.dht?.bind(listenAddress) }
        engineOptions.localDiscovery = hasLocalDiscovery
        engineOptions.localDiscoveryAddress = options.listenAddress
        engineOptions.log = { message in if verbose { printError(message) } }
        let engine: Engine
        let id: TorrentID
        do {
            engine = try Engine(options: engineOptions)
        } catch {
            printError("potluck: \(error)")
            throw ExitCode(1)
        }
        do {
            switch source {
            case .metainfo(let metainfo): id = try engine.add(metainfo, options: options)
            case .magnet(let magnet): id = try engine.add(magnet: magnet, options: options)
            }
        } catch {
            printError("potluck: \(error)")
            // Its threads end before the process does: exiting under a running reactor or DHT
            // service crashed it now and then (SIGSEGV in the exit-time teardown).
            engine.shutdown()
            throw ExitCode(1)
        }
        var progress = ProgressLine(label: "downloading", quiet: sharing.quiet)
        var fetching = ProgressLine(label: "fetching metadata", quiet: sharing.quiet)
        var metadataAnnounced: Bool
        if case .magnet = source { metadataAnnounced = false } else { metadataAnnounced = true }
        var checking = ProgressLine(label: "checking", quiet: sharing.quiet)
        let started = ContinuousClock.now

        var announcedListening = false
        var statusesDrawn = 0
        var stopping = false
        var snapshot = engine.snapshot(id)
        var moveAnnounced = false
        // The loop below looks again as soon as the torrent ends (after a move, once it ends again),
        // and otherwise ten times a second for the progress line and Ctrl-C: a download that is done
        // exits then, not at the next look (50 ms later on average).
        let ended = DispatchSemaphore(value: 0)
        let events = engine.events
        let listener = Task.detached {
            for await event in events {
                if case .ended(let endedID, _, _) = event, endedID == id { ended.signal() }
            }
        }
        defer { listener.cancel() }
        // Between its session's end and its restart in the new folder, a moving torrent is not live.
        while let current = snapshot, current.isLive || current.activity == .moving {
            if current.activity == .moving && !moveAnnounced {
                moveAnnounced = true
                progress.finish()
                printError("moving the files to \(output)")
            }
            if !stopping && stopRequested.load(ordering: .relaxed) {
                stopping = true
                try? engine.pause(id)
            }
            if !metadataAnnounced, current.hasMetadata, let metainfo = engine.metainfo(of: id) {
                metadataAnnounced = true
                fetching.finish()
                announceMetadata(metainfo)
            }
            if current.status == nil, let fetch = current.metadataFetch,
                current.statusReports != statusesDrawn
            {
                statusesDrawn = current.statusReports
                fetching.update(
                    done: 0, total: 1, rateBytesPerSecond: 0,
                    extra:
                        "peers \(fetch.connectedPeers)/\(fetch.knownPeers), \(fetch.offeringPeers) offering it"
                        + (fetch.trackerState.map { "  " + Self.short($0) } ?? ""))
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
            _ = ended.wait(timeout: .now() + .milliseconds(100))
            snapshot = engine.snapshot(id)
        }
        // A small torrent may arrive whole between two looks at its snapshot.
        if !metadataAnnounced, let metainfo = engine.metainfo(of: id) {
            fetching.finish()
            announceMetadata(metainfo)
        }
        // A small torrent's move may start and end between two looks too.
        if !moveAnnounced, incompleteDirectory != nil, snapshot?.downloadDirectory == output,
            options.downloadDirectory != output
        {
            progress.finish()
            printError("moved the files to \(output)")
        }
        let metadataSeconds = snapshot?.metadataReceivedAt.map { seconds($0 - started) }
        let name = engine.metainfo(of: id)?.name ?? snapshot?.name ?? torrent
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
        fetching.finish()
        progress.finish()
        let elapsed = seconds(ContinuousClock.now - started)
        switch outcome {
        case .completed:
            let size = engine.metainfo(of: id).map { Format.size($0.totalLength) } ?? "?"
            // `potluck bench magnet` reads the metadata's time from this line.
            let metadata = metadataSeconds.map { " (metadata after \(Format.fixed($0, 3)) s)" } ?? ""
            print("completed \(name): \(size) in \(Format.fixed(elapsed, 2)) s\(metadata)")
        case .interrupted:
            printError("stopped; resume data saved. Run the same command again to continue.")
            throw ExitCode(130)
        }
    }

    /// Where the download starts: the incomplete folder, unless an earlier run already moved the files
    /// out of it (their resume data went with them; a move cut short is finished by the engine).
    func startDirectory(for source: Source) -> String {
        guard let incompleteDirectory else { return output }
        let infoHash: InfoHash?
        switch source {
        case .metainfo(let metainfo): infoHash = metainfo.wireInfoHash
        case .magnet(let magnet): infoHash = magnet.infoHashV1
        }
        guard let infoHash else { return incompleteDirectory }
        let completed = DownloadOptions(downloadDirectory: output, peers: [])
        return FileManager.default.fileExists(atPath: completed.resumeDataPath(infoHash: infoHash))
            ? output : incompleteDirectory
    }

    /// A magnet link's metadata arrived: say what the torrent is, and save it if asked.
    func announceMetadata(_ metainfo: Metainfo) {
        printError(
            "metadata received: \(metainfo.name), \(metainfo.files.count) files, \(Format.size(metainfo.totalLength))"
        )
        guard let saveTorrent else { return }
        if FileManager.default.createFile(atPath: saveTorrent, contents: Data(metainfo.bytes)) {
            printError("saved \(saveTorrent)")
        } else {
            printError("potluck: cannot write \(saveTorrent); the download goes on")
        }
    }

    /// A tracker state cut to fit the progress line (errors can carry long messages).
    static func short(_ text: String) -> String {
        text.count <= 60 ? text : String(text.prefix(57)) + "..."
    }
}
