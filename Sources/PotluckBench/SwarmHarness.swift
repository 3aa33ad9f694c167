import ArgumentParser
import CommandSupport
import Engine
import Foundation
import Glibc

/// The clients a swarm benchmark can put in a role, each driven through its real program or library.
enum ClientKind: String, CaseIterable, Sendable, ExpressibleByArgument {
    case potluck, libtorrent, transmission, aria2

    /// The Debian package that provides it.
    var debianPackage: String {
        switch self {
        case .potluck: "potluck"
        case .libtorrent: "python3-libtorrent"
        case .transmission: "transmission-daemon"
        case .aria2: "aria2"
        }
    }

    /// The process that does the work, when a driver script starts it (its CPU and memory count).
    var clientProcessName: String? {
        switch self {
        case .transmission: "transmission-da"  // /proc comm is cut at 15 characters
        case .aria2: "aria2c"
        default: nil
        }
    }

    var isInstalled: Bool {
        switch self {
        case .potluck: true
        case .libtorrent:
            (try? ExternalCommand.run("/usr/bin/python3", ["-c", "import libtorrent"], timeoutSeconds: 30))?
                .status == 0
        case .transmission: access("/usr/bin/transmission-daemon", X_OK) == 0
        case .aria2: access("/usr/bin/aria2c", X_OK) == 0
        }
    }

    var version: String {
        switch self {
        case .potluck: potluckVersion
        case .libtorrent:
            ExternalCommand.version(
                "/usr/bin/python3", ["-c", "import libtorrent; print(libtorrent.__version__)"])
        case .transmission: ExternalCommand.version("/usr/bin/transmission-daemon", ["--version"])
        case .aria2: ExternalCommand.version("/usr/bin/aria2c", ["--version"])
        }
    }
}

/// One sample of a transfer: payload bytes on disk `seconds` after the client started.
struct Sample: Sendable {
    let seconds: Double
    let bytes: Int64
}

/// What one client did in one role.
struct TransferResult {
    enum Role: String { case leecher, seeder }

    let role: Role
    let client: ClientKind
    var label: String
    var version: String
    var status = "failed"
    /// Payload bytes moved: the payload for a leecher; the payload times the leechers for a seeder.
    var bytes: Int64 = 0
    var wallSeconds: Double = 0
    var cpuSeconds: Double = 0
    var peakResidentKiB = 0
    var firstPieceSeconds: Double?
    var samples: [Sample] = []
    /// Leechers served (seeders only).
    var leechers = 0
    /// The rate of the client's own link under --link, to report utilisation.
    var linkRateBitsPerSecond: Double?
    /// Where the samples come from: "verified" (bytes of verified pieces as the client reports them) or
    /// "disk" (payload bytes allocated on disk).
    var progressSource = "disk"

    init(role: Role, client: ClientKind, version: String, label: String? = nil) {
        self.role = role
        self.client = client
        self.version = version
        self.label = label ?? client.rawValue
    }

    var ok: Bool { status == "ok" }
    var megabytesPerSecond: Double { wallSeconds > 0 ? Double(bytes) / wallSeconds / 1e6 : 0 }
    var cpuSecondsPerGiB: Double { bytes > 0 ? cpuSeconds / (Double(bytes) / Double(1 << 30)) : 0 }
    /// Payload throughput as a fraction of the link's rate (headers not counted: about 0.95 is full).
    var linkUtilisation: Double? { linkRateBitsPerSecond.map { megabytesPerSecond * 8e6 / $0 } }
}

/// One benchmark run's resources: a scratch folder, the children it started and the namespaces it
/// made, all removed by `cleanup()` — also on Ctrl-C (a thread waits for the signal) and, after a run
/// killed outright, by the next run (`removeLeftovers`) or `netns.py cleanup --run ID`.
///
/// Every child inherits `POTLUCK_INTEROP_RUN=ID`, so the harness marks what it creates with it.
final class BenchRun: @unchecked Sendable {
    let id: String
    let harness: String
    let workspace: String
    private let lock = NSLock()
    private var children: [ChildProcess] = []
    private var namespaces: [String] = []
    private var closed = false
    private var logCount = 0
    /// Where the clients' logs are copied when the run ends (nil: they go with the workspace).
    var keepLogsIn: String?

    /// The run a signal should clean up.
    private static let active = ActiveRun()

    init(directory: String, harness: String) throws {
        id = "bench\(getpid())"
        self.harness = harness
        setenv("POTLUCK_INTEROP_RUN", id, 1)
        Self.removeLeftovers(in: directory, harness: harness)
        workspace = directory + "/potluck-bench-\(getpid())"
        guard mkdir(workspace, 0o700) == 0, mkdir(workspace + "/logs", 0o700) == 0 else {
            printError("potluck: cannot create \(workspace): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        Self.active.set(self)
        Self.catchSignals()
    }

    /// A fresh run in `directory` with the harness (`harness`, or the build's copy beside the binary),
    /// root when `needsRoot`; says what is missing and throws otherwise.
    static func start(_ what: String, needsRoot: Bool, directory: String, harness: String?) throws -> BenchRun
    {
        guard !needsRoot || getuid() == 0 else {
            printError(
                "potluck: \(what) needs root (network namespaces for Transmission, other clients' sockets)")
            throw ExitCode(1)
        }
        let executable = ExternalCommand.currentExecutable()
        guard let harness = harness ?? HarnessLocation.beside(executable: executable) else {
            printError(
                "potluck: cannot find the interop harness: no \(HarnessLocation.bundleName) (the build's copy of "
                    + "Tests/Interop) beside \(executable); give --harness DIR")
            throw ExitCode(1)
        }
        guard access("/usr/bin/python3", X_OK) == 0 else {
            printError("potluck: \(what) needs /usr/bin/python3 (apt-get install python3)")
            throw ExitCode(1)
        }
        let run = try BenchRun(directory: directory, harness: harness)
        printError(
            "run \(run.id): after a killed run, `\(harness)/netns.py cleanup --run \(run.id)` removes its leftovers"
        )
        return run
    }

    /// What benchmarks killed with SIGKILL left behind: their scratch folders (named after a pid that
    /// no longer runs a potluck) and whatever the harness made for them.
    static func removeLeftovers(in directory: String, harness: String) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for entry in entries where entry.hasPrefix("potluck-bench-") {
            guard let pid = pid_t(entry.dropFirst("potluck-bench-".count)) else { continue }
            if let name = ProcFS.name(pid), name.hasPrefix("potluck") { continue }
            printError("removing what an interrupted benchmark (pid \(pid)) left behind")
            _ = try? ExternalCommand.run(
                "/usr/bin/python3", [harness + "/netns.py", "cleanup", "--run", "bench\(pid)"],
                timeoutSeconds: 120)
            ExternalCommand.removeTree(directory + "/" + entry)
        }
    }

    /// Starts a long-running child, logged to logs/LABEL-N.log, inside `netns` if given; it is
    /// stopped by `cleanup()`.
    func spawn(
        _ executable: String, _ arguments: [String], label: String, netns: String? = nil
    ) throws -> ChildProcess {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { throw ExternalCommand.Failure(description: "the benchmark is stopping") }
        logCount += 1
        // `ip netns exec` execs the program: the pid stays the client's.
        let command = netns.map {
            ([ExternalCommand.find("ip") ?? "/usr/sbin/ip"], ["netns", "exec", $0, executable])
        }
        let child = try ChildProcess(
            command?.0[0] ?? executable, (command?.1 ?? []) + arguments,
            logPath: workspace + "/logs/\(logCount)-\(label).log")
        children.append(child)
        return child
    }

    func python(
        _ tool: String, _ arguments: [String], label: String, netns: String? = nil
    ) throws -> ChildProcess {
        try spawn("/usr/bin/python3", [harness + "/" + tool] + arguments, label: label, netns: netns)
    }

    /// Namespaces a tool made that this run must delete.
    func adopt(namespaces names: [String]) {
        lock.lock()
        namespaces += names
        lock.unlock()
    }

    /// A harness namespace with `rootAddresses` extra addresses on its root-side veth.
    func createNamespace(rootAddresses: Int) throws -> (name: String, addresses: [String]) {
        let made = try ExternalCommand.run(
            "/usr/bin/python3", [harness + "/netns.py", "create", "--root-addresses", "\(rootAddresses)"])
        let line = made.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
        guard made.status == 0,
            let info = line.flatMap({
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }),
            let name = info["netns"] as? String, let addresses = info["root_addresses"] as? [String]
        else {
            throw ExternalCommand.Failure(description: "cannot create a network namespace (netns.py create)")
        }
        lock.lock()
        namespaces.append(name)
        lock.unlock()
        return (name, addresses)
    }

    /// Forgets a child that has been stopped and reaped.
    func release(_ child: ChildProcess) {
        lock.lock()
        children.removeAll { $0 === child }
        lock.unlock()
    }

    /// Set by the signal thread: the main thread must not carry on (or exit first) while it cleans up.
    private var interrupted = false
    private let cleaning = NSLock()

    /// Parks the calling thread for good once a signal is being handled: the signal thread cleans up
    /// and ends the process.
    func stopIfInterrupted() {
        lock.lock()
        let stop = interrupted
        lock.unlock()
        if stop { while true { pause() } }
    }

    /// Stops every child (newest first), deletes the namespaces and the scratch folder. Idempotent;
    /// a second caller waits for the first to finish.
    func cleanup() {
        cleaning.lock()
        lock.lock()
        let stop = interrupted
        lock.unlock()
        if stop {
            cleaning.unlock()
            stopIfInterrupted()
        }
        defer { cleaning.unlock() }
        cleaningUp()
    }

    /// The work of `cleanup()`, for the signal thread (which must not park itself).
    private func cleaningUp() {
        lock.lock()
        let wasClosed = closed
        closed = true
        let stopping = children.reversed()
        children = []
        let deleting = namespaces
        namespaces = []
        lock.unlock()
        guard !wasClosed else { return }
        for child in stopping { child.stop(graceSeconds: 5) }
        if !deleting.isEmpty {
            _ = try? ExternalCommand.run("/usr/bin/python3", [harness + "/netns.py", "delete"] + deleting)
        }
        // Anything a tool made for this run that its own teardown missed.
        _ = try? ExternalCommand.run(
            "/usr/bin/python3", [harness + "/netns.py", "cleanup", "--run", id], timeoutSeconds: 120)
        if let keepLogsIn { keepLogs(in: keepLogsIn) }
        ExternalCommand.removeTree(workspace)
        Self.active.set(nil)
    }

    private func keepLogs(in folder: String) {
        let manager = FileManager.default
        do {
            try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for name in try manager.contentsOfDirectory(atPath: workspace + "/logs") {
                let target = folder + "/" + name
                try? manager.removeItem(atPath: target)
                try manager.copyItem(atPath: workspace + "/logs/" + name, toPath: target)
            }
            printError("potluck: the clients' logs are in \(folder)")
        } catch {
            printError("potluck: cannot keep the logs in \(folder): \(error)")
        }
    }

    /// Ctrl-C, SIGTERM or SIGHUP: clean up on a thread of our own, then exit 130 (or 128+N).
    private static func catchSignals() {
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        for stopSignal in [SIGINT, SIGTERM, SIGHUP] {
            sigaddset(&stopSignals, stopSignal)
            // An ignored signal is discarded before sigwait could see it (a parent may have ignored it).
            signal(stopSignal, SIG_DFL)
        }
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        guard active.claimSignalThread() else { return }
        let thread = Thread {
            var waitFor = sigset_t()
            sigemptyset(&waitFor)
            for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&waitFor, signal) }
            var received: Int32 = 0
            sigwait(&waitFor, &received)
            printErrorRaw("\n")
            printError("potluck: interrupted; stopping the clients and removing what the benchmark made")
            if let run = BenchRun.active.get() {
                run.lock.lock()
                run.interrupted = true
                run.lock.unlock()
                run.cleaning.lock()
                run.cleaningUp()
            }
            exit(128 + received)
        }
        thread.start()
    }

    private final class ActiveRun: @unchecked Sendable {
        private let lock = NSLock()
        private var run: BenchRun?
        private var signalThread = false
        func set(_ run: BenchRun?) {
            lock.lock()
            self.run = run
            lock.unlock()
        }
        func get() -> BenchRun? {
            lock.lock()
            defer { lock.unlock() }
            return run
        }
        func claimSignalThread() -> Bool {
            lock.lock()
            defer { lock.unlock() }
            if signalThread { return false }
            signalThread = true
            return true
        }
    }
}

/// A payload, its torrent and the clients that can take part: the fixture every swarm benchmark uses.
final class SwarmFixture {
    let run: BenchRun
    let payloadBytes: Int
    let pieceBytes: Int
    let seedDirectory: String
    let payload: String
    let torrent: String
    let infoHash: String
    let timeoutSeconds: Double
    let coldCache: Bool
    /// Extra `potluck download` arguments for Potluck leechers (`--sequential`, `--verbose`).
    var potluckDownloadArguments: [String] = []
    /// Extra `potluck seed` arguments for Potluck seeders (`--verbose`).
    var potluckSeedArguments: [String] = []
    private var installed: [ClientKind: Bool] = [:]
    private var versions: [ClientKind: String] = [:]

    /// A peer's end of a shaped link: its namespace and address on the bridge.
    struct LinkPeer {
        let netns: String
        let address: String
    }

    /// The shaped links of --link, when asked for.
    struct Links {
        let rateBitsPerSecond: Double
        let rttMilliseconds: Double
        let delayApplied: Bool
        let note: String
        var free: [LinkPeer]
    }

    private(set) var links: Links?

    /// Makes `peers` namespaces joined through a bridge, each link shaped to the rate (linknet.py).
    func createLinks(peers: Int, rateBitsPerSecond: Double, rttMilliseconds: Double) throws {
        let made = try ExternalCommand.run(
            "/usr/bin/python3",
            [
                run.harness + "/linknet.py", "create", "--peers", "\(peers)", "--rate",
                "\(Int(rateBitsPerSecond))",
                "--rtt-ms", "\(rttMilliseconds)",
            ], timeoutSeconds: 120, mergeStandardError: true)
        let line = made.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
        guard made.status == 0,
            let info = line.flatMap({
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }),
            let hub = info["hub"] as? String, let list = info["peers"] as? [[String: Any]]
        else {
            printError("potluck: cannot make the shaped links: \(made.standardOutput.suffix(400))")
            throw ExitCode(1)
        }
        let free = list.compactMap { peer in
            (peer["netns"] as? String).flatMap { netns in
                (peer["address"] as? String).map { LinkPeer(netns: netns, address: $0) }
            }
        }
        run.adopt(namespaces: [hub] + free.map(\.netns))
        let note = info["note"] as? String ?? ""
        if !note.isEmpty { printError("note: \(note)") }
        links = Links(
            rateBitsPerSecond: rateBitsPerSecond, rttMilliseconds: rttMilliseconds,
            delayApplied: info["delay_applied"] as? Bool ?? false, note: note, free: free)
    }

    /// The next unused link peer.
    func takeLinkPeer() throws -> LinkPeer {
        guard var links, !links.free.isEmpty else {
            throw ExternalCommand.Failure(description: "no shaped link left for another peer")
        }
        let peer = links.free.removeFirst()
        self.links = links
        return peer
    }

    /// Puts back the links as they were (to reuse them for the next run of a case).
    func restoreLinks(_ saved: Links?) { links = saved }

    /// Starts an opentracker for the payload on `address` and returns its announce URL.
    func startTracker(address: String, netns: String?) throws -> String {
        let process = try run.python(
            "tracker.py",
            [
                "start", "--http-port", "0", "--udp-port", "0", "--whitelist", infoHash, "--bind", address,
                "--timeout", "60",
            ],
            label: "tracker", netns: netns)
        let ready = process.waitForLog(timeoutSeconds: 60) { _ in process.firstJSON }
        guard let url = ready?["http"] as? String else {
            throw Self.failure("opentracker did not start", process)
        }
        return url
    }

    /// On shaped links, Transmission and aria2 (which cannot be handed peers) find them on a tracker.
    func needsTrackerOnLinks(_ kind: ClientKind) -> Bool { kind == .transmission || kind == .aria2 }

    var linkDescription: String {
        guard let links else { return "loopback" }
        let rate =
            links.rateBitsPerSecond >= 1e9
            ? Format.fixed(links.rateBitsPerSecond / 1e9, 1) + " Gbit/s"
            : Format.fixed(links.rateBitsPerSecond / 1e6, 0) + " Mbit/s"
        let delay =
            links.rttMilliseconds > 0
            ? (links.delayApplied
                ? ", \(Format.fixed(links.rttMilliseconds, 0)) ms RTT"
                : ", no delay (no netem in this kernel)")
            : ""
        return "\(rate) links (tbf) through a bridge\(delay)"
    }

    init(run: BenchRun, payloadBytes: Int, pieceBytes: Int, timeoutSeconds: Double, coldCache: Bool) throws {
        self.run = run
        self.payloadBytes = payloadBytes
        self.pieceBytes = pieceBytes
        self.timeoutSeconds = timeoutSeconds
        self.coldCache = coldCache
        seedDirectory = run.workspace + "/seed"
        mkdir(seedDirectory, 0o700)
        payload = seedDirectory + "/payload.bin"
        torrent = run.workspace + "/payload.torrent"
        printError("writing a \(Format.bytes(payloadBytes)) payload and its torrent...")
        try BenchCreate.writePayload(payload, bytes: payloadBytes)
        let created = try ExternalCommand.run(
            ExternalCommand.currentExecutable(),
            ["create", "--quiet", "--v1", "--piece-size", "\(pieceBytes)", "-o", torrent, payload],
            timeoutSeconds: 600)
        let info = try ExternalCommand.run(ExternalCommand.currentExecutable(), ["info", "--json", torrent])
        guard created.status == 0,
            let object = try? JSONSerialization.jsonObject(with: Data(info.standardOutput.utf8))
                as? [String: Any],
            let hash = object["infohash_v1"] as? String
        else {
            printError("potluck: cannot create the benchmark torrent")
            throw ExitCode(1)
        }
        infoHash = hash
    }

    func isInstalled(_ kind: ClientKind) -> Bool {
        if let known = installed[kind] { return known }
        let value = kind.isInstalled
        installed[kind] = value
        return value
    }

    func version(_ kind: ClientKind) -> String {
        if let known = versions[kind] { return known }
        let value = isInstalled(kind) ? kind.version : "-"
        versions[kind] = value
        return value
    }

    func notInstalled(_ kind: ClientKind) -> String {
        "not installed (apt-get install \(kind.debianPackage))"
    }

    /// Cold cache: the payload's pages are dropped (sync, then posix_fadvise DONTNEED on the payload
    /// file only, so the rest of a shared machine keeps its cache). Warm: it is read once instead.
    func prepareCache() { Self.prepareCache(payload, cold: coldCache) }

    /// The same for any file.
    static func prepareCache(_ path: String, cold coldCache: Bool) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        if coldCache {
            fdatasync(fd)
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        } else {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
        }
    }

    /// True when `path` holds exactly the payload's bytes.
    func isPayload(_ path: String) -> Bool { Self.sameContents(payload, path) }

    /// True when both files hold the same bytes.
    static func sameContents(_ one: String, _ other: String) -> Bool {
        guard let first = FileHandle(forReadingAtPath: one),
            let second = FileHandle(forReadingAtPath: other)
        else {
            return false
        }
        defer {
            try? first.close()
            try? second.close()
        }
        while true {
            let x = first.readData(ofLength: 4 << 20)
            let y = second.readData(ofLength: 4 << 20)
            if x != y { return false }
            if x.isEmpty { return true }
        }
    }

    // MARK: Seeders

    struct Seeder {
        let kind: ClientKind
        let process: ChildProcess
        /// The process whose CPU and memory are the seeder's (Transmission's daemon, not its driver).
        let pid: pid_t
        let peer: String
        /// Source addresses downloaders must use (Transmission keeps one peer per address).
        let clientAddresses: [String]
    }

    /// Starts one seeder of `kind` listening on `address` (Transmission makes its own namespace and
    /// ignores it), and returns once it serves the payload.
    func startSeeder(
        _ kind: ClientKind, address: String, clientAddresses: Int = 0, tracker: String? = nil,
        trustData: Bool = false, netns: String? = nil
    ) throws -> Seeder {
        let trackerArguments = tracker.map { ["--tracker", $0] } ?? []
        switch kind {
        case .potluck:
            // A port chosen here, so nothing depends on the wording of its log; on a shaped link the
            // namespace is its own and any port is free.
            let port = netns == nil ? Self.freePort(on: address) : 6881
            let peer = "\(address):\(port)"
            let resume = seedDirectory + "/.\(infoHash).potluck-resume"
            let started = Date()
            let process = try run.spawn(
                ExternalCommand.currentExecutable(),
                ["seed", torrent, "--data", seedDirectory, "--listen", peer, "--no-dht", "--no-lsd"]
                    + potluckSeedArguments,
                label: "potluck-seed",
                netns: netns)
            // Ready once its data is checked: it says it is seeding, or it has just saved resume data.
            let ready = process.waitForLog(timeoutSeconds: timeoutSeconds) { log -> Bool? in
                if log.contains("seeding") { return true }
                let saved =
                    (try? FileManager.default.attributesOfItem(atPath: resume))?[.modificationDate] as? Date
                return saved.map { $0 >= started.addingTimeInterval(-1) } == true ? true : nil
            }
            guard ready == true, process.exitStatus == nil else {
                throw Self.failure("potluck seed did not start", process)
            }
            if let tracker { try announce(peer, from: address, netns: netns, to: tracker) }
            return Seeder(kind: kind, process: process, pid: process.pid, peer: peer, clientAddresses: [])
        case .libtorrent:
            let process = try run.python(
                "lt.py",
                ["seed", torrent, seedDirectory, "--bind", address] + (trustData ? ["--seed-mode"] : [])
                    + trackerArguments, label: "libtorrent-seed", netns: netns)
            let ready = process.waitForLog(timeoutSeconds: timeoutSeconds) { _ in process.firstJSON }
            guard let peer = (ready?["peers"] as? [String])?.first else {
                throw Self.failure("a libtorrent seeder did not start", process)
            }
            return Seeder(kind: kind, process: process, pid: process.pid, peer: peer, clientAddresses: [])
        case .transmission:
            // On a shaped link it runs in that link's namespace (its driver enters it from here).
            let place =
                netns.map { ["--netns", $0, "--bind", address] } ?? [
                    "--client-addresses", "\(max(1, clientAddresses))",
                ]
            let process = try run.python(
                "transmission.py", ["seed", torrent, seedDirectory] + place, label: "transmission-seed")
            let ready = process.waitForLog(timeoutSeconds: timeoutSeconds) { _ in process.firstJSON }
            guard let peer = ready?["peer"] as? String, let pid = (ready?["pid"] as? Int).map(pid_t.init)
            else {
                throw Self.failure("the Transmission seeder did not start", process)
            }
            if let tracker, netns != nil { try announce(peer, from: address, netns: netns, to: tracker) }
            return Seeder(
                kind: kind, process: process, pid: pid, peer: peer,
                clientAddresses: ready?["client_addresses"] as? [String] ?? [])
        case .aria2:
            let process = try run.python(
                "aria2.py", ["seed", torrent, seedDirectory, "--bind", address] + trackerArguments,
                label: "aria2-seed", netns: netns)
            let ready = process.waitForLog(timeoutSeconds: timeoutSeconds) { _ in process.firstJSON }
            guard let peer = ready?["peer"] as? String, let pid = (ready?["pid"] as? Int).map(pid_t.init)
            else {
                throw Self.failure("the aria2 seeder did not start", process)
            }
            return Seeder(kind: kind, process: process, pid: pid, peer: peer, clientAddresses: [])
        }
    }

    /// Announces a seeder from the address it listens on, so the tracker records that address (the
    /// benchmark's torrent names no tracker, so Potluck and Transmission as driven here do not announce).
    private func announce(_ peer: String, from address: String, netns: String?, to tracker: String) throws {
        let command = [
            "/usr/bin/python3", run.harness + "/tracker.py", "announce", tracker, "--infohash", infoHash,
            "--port", String(peer.split(separator: ":").last ?? "0"), "--source", address,
        ]
        let inside = netns.map { ["netns", "exec", $0] + command }
        let result = try ExternalCommand.run(
            inside == nil ? command[0] : (ExternalCommand.find("ip") ?? "/usr/sbin/ip"),
            inside ?? Array(command.dropFirst()))
        guard result.status == 0 else {
            throw ExternalCommand.Failure(description: "the tracker refused the announce of \(peer)")
        }
    }

    func stop(_ seeder: Seeder) {
        seeder.process.stop()
        run.release(seeder.process)
    }

    private static func failure(_ what: String, _ process: ChildProcess) -> ExternalCommand.Failure {
        let last = process.log.split(separator: "\n").suffix(3).joined(separator: " / ")
        return ExternalCommand.Failure(description: "\(what): \(last)")
    }

    // MARK: Leechers

    /// A leecher being watched: its process, where it writes, and what has been seen of it.
    final class Leecher {
        let kind: ClientKind
        let process: ChildProcess
        let target: String
        let label: String
        /// Where the payload lands (or, for several sessions, the folders holding it).
        let payloadPaths: [String]
        var samples: [Sample] = []
        var clientPID: pid_t?
        /// Seconds from spawning the driver to the client process appearing (0 when they are one).
        var clientStartSeconds: Double = 0
        var peakResidentKiB = 0
        var finishedSeconds: Double?
        var timedOut = false
        var linkRateBitsPerSecond: Double?
        /// A file where the driver writes "MONOTONIC_SECONDS VERIFIED_BYTES" lines, if it can.
        var progressPath: String?

        init(kind: ClientKind, process: ChildProcess, target: String, label: String, payloadPaths: [String]) {
            self.kind = kind
            self.process = process
            self.target = target
            self.label = label
            self.payloadPaths = payloadPaths
            if kind.clientProcessName == nil { clientPID = process.pid }
        }
    }

    /// Starts `kind` downloading into a fresh folder from `peers` (or a tracker).
    func startLeecher(
        _ kind: ClientKind, label: String, peers: [String], tracker: String? = nil, bind: String? = nil,
        listen: String? = nil, netns: String? = nil
    ) throws -> Leecher {
        let target = run.workspace + "/download-\(label)"
        ExternalCommand.removeTree(target)
        mkdir(target, 0o700)
        let peerArguments = peers.flatMap { ["--peer", $0] }
        let progressPath = target + ".progress"
        let timeout = ["--timeout", "\(Int(timeoutSeconds))"]
        let bindArguments = bind.map { ["--bind", $0] } ?? []
        let process: ChildProcess
        switch kind {
        case .potluck:
            process = try run.spawn(
                ExternalCommand.currentExecutable(),
                ["download", "--quiet", "--no-dht", "--no-lsd", torrent, "-o", target] + peerArguments
                    + potluckDownloadArguments
                    + (listen.map { ["--listen", "\($0):0"] } ?? []), label: label, netns: netns)
        case .libtorrent:
            process = try run.python(
                "lt.py",
                ["download", torrent, target, "--progress", progressPath] + timeout + peerArguments
                    + bindArguments + (tracker.map { ["--tracker", $0] } ?? []), label: label, netns: netns)
        case .transmission:
            // On a shaped link: in that link's namespace (its driver enters it), peers from the tracker.
            let source =
                netns.map { ["--netns", $0, "--bind", bind ?? "", "--tracker", tracker ?? ""] }
                ?? peerArguments
            process = try run.python(
                "transmission.py",
                ["download", torrent, target, "--progress", progressPath] + timeout + source,
                label: label)
        case .aria2:
            let source = tracker.map { ["--tracker", $0] } ?? peerArguments
            process = try run.python(
                "aria2.py", ["download", torrent, target] + timeout + source + bindArguments, label: label,
                netns: netns)
        }
        let leecher = Leecher(
            kind: kind, process: process, target: target, label: label,
            payloadPaths: [target + "/payload.bin"])
        leecher.linkRateBitsPerSecond = netns == nil ? nil : links?.rateBitsPerSecond
        if kind == .libtorrent || kind == .transmission { leecher.progressPath = progressPath }
        return leecher
    }

    /// N libtorrent leechers in one process (`lt.py download --count N`), each into its own folder.
    func startLibtorrentLeechers(count: Int, peer: String, binds: [String]) throws -> Leecher {
        let target = run.workspace + "/leechers"
        ExternalCommand.removeTree(target)
        mkdir(target, 0o700)
        let process = try run.python(
            "lt.py",
            [
                "download", torrent, target, "--count", "\(count)", "--peer", peer, "--timeout",
                "\(Int(timeoutSeconds))", "--progress", target + ".progress",
            ]
                + binds.flatMap { ["--bind", $0] }, label: "libtorrent-leechers")
        let leecher = Leecher(
            kind: .libtorrent, process: process, target: target, label: "\(count) libtorrent leechers",
            payloadPaths: (1...count).map { target + "/\($0)/payload.bin" })
        leecher.progressPath = target + ".progress"
        return leecher
    }

    /// Samples every leecher's progress every 100 ms until all have exited or run out of time.
    /// `tick` runs after each round of samples (for a seeder's memory).
    func watch(_ leechers: [Leecher], progressLabel: String, tick: () -> Void = {}) {
        let total = Int64(payloadBytes) * Int64(leechers.reduce(0) { $0 + $1.payloadPaths.count })
        var progress = ProgressLine(label: progressLabel)
        while leechers.contains(where: { $0.finishedSeconds == nil }) {
            var done: Int64 = 0
            for leecher in leechers {
                guard leecher.finishedSeconds == nil else {
                    done += leecher.samples.last?.bytes ?? 0
                    continue
                }
                let elapsed = seconds(ContinuousClock.now - leecher.process.started)
                if leecher.process.reap() {
                    leecher.finishedSeconds =
                        leecher.process.exitedAt.map { seconds($0 - leecher.process.started) }
                        ?? elapsed
                } else if elapsed > timeoutSeconds + 30 {
                    leecher.timedOut = true
                    leecher.process.stop(graceSeconds: 5)
                    leecher.finishedSeconds = elapsed
                }
                if leecher.clientPID == nil, let name = leecher.kind.clientProcessName {
                    leecher.clientPID = ProcFS.descendants(of: leecher.process.pid).first {
                        ProcFS.name($0) == name
                    }
                    if leecher.clientPID != nil { leecher.clientStartSeconds = elapsed }
                }
                if let pid = leecher.clientPID, let peak = ProcFS.peakResidentKiB(pid) {
                    leecher.peakResidentKiB = max(leecher.peakResidentKiB, peak)
                }
                let bytes = DiskProgress.bytes(under: leecher.target)
                leecher.samples.append(Sample(seconds: elapsed, bytes: bytes))
                done += bytes
            }
            tick()
            run.stopIfInterrupted()
            progress.update(done: min(done, total), total: total)
            if leechers.contains(where: { $0.finishedSeconds == nil }) { usleep(100_000) }
        }
        progress.finish()
    }

    /// A TCP port nothing listens on at `address` right now (the kernel's choice for port 0).
    static func freePort(on address: String) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, address, &socketAddress.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: socketAddress.sin_port)) : 6881
    }

    /// "MONOTONIC_SECONDS BYTES" lines of a progress file, as samples from `start`.
    static func progress(_ path: String?, since start: Double) -> [Sample] {
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 2, let seconds = Double(fields[0]), let bytes = Int64(fields[1]) else {
                return nil
            }
            return Sample(seconds: max(0, seconds - start), bytes: bytes)
        }
    }

    /// Several leechers' samples (taken in the same rounds) added up: their aggregate progress.
    static func sum(_ series: [[Sample]]) -> [Sample] {
        guard let longest = series.max(by: { $0.count < $1.count }) else { return [] }
        return longest.indices.map { index in
            Sample(
                seconds: longest[index].seconds,
                bytes: series.reduce(0) { $0 + ($1.isEmpty ? 0 : $1[min(index, $1.count - 1)].bytes) })
        }
    }

    /// The measurement of a finished leecher: verified byte for byte, or marked as what went wrong.
    func result(of leecher: Leecher, version: String) -> TransferResult {
        var measurement = TransferResult(
            role: .leecher, client: leecher.kind, version: version, label: leecher.label)
        let process = leecher.process
        run.release(process)
        if leecher.timedOut {
            measurement.status = "timed out"
        } else if process.exitStatus != 0 {
            measurement.status = "failed (exit \(process.exitStatus ?? -1))"
            let last = process.log.split(separator: "\n").last.map(String.init) ?? ""
            printError("\(leecher.label) failed: \(last)")
        } else if !leecher.payloadPaths.allSatisfy(isPayload) {
            measurement.status = "wrong data"
        } else {
            measurement.status = "ok"
        }
        measurement.bytes = Int64(payloadBytes) * Int64(leecher.payloadPaths.count)
        measurement.linkRateBitsPerSecond = leecher.linkRateBitsPerSecond
        // Potluck and libtorrent (in its Python driver's process) are measured as whole processes,
        // start to exit. Transmission and aria2 run behind a driver that first makes a namespace and a
        // private tracker: their drivers time the transfer and read the client's own CPU time.
        let reported = leecher.kind.clientProcessName != nil ? process.lastJSON : nil
        measurement.wallSeconds = (reported?["seconds"] as? Double) ?? leecher.finishedSeconds ?? 0
        measurement.cpuSeconds = (reported?["cpu_seconds"] as? Double) ?? process.reapedCPUSeconds
        measurement.peakResidentKiB =
            leecher.kind.clientProcessName != nil && leecher.peakResidentKiB > 0
            ? leecher.peakResidentKiB : process.usage.ru_maxrss
        // Verified bytes as the client reports them where its driver can (libtorrent, Transmission);
        // otherwise payload on disk (Potluck writes only verified pieces; aria2 writes blocks).
        let reportedSamples = Self.progress(leecher.progressPath, since: process.startedMonotonicSeconds)
        if !reportedSamples.isEmpty {
            leecher.samples = reportedSamples
            measurement.progressSource = "verified"
        }
        if let path = leecher.progressPath { unlink(path) }
        // Time from the client's own start, so the plot and first piece exclude the drivers' set-up.
        measurement.samples = leecher.samples.compactMap { sample in
            sample.seconds < leecher.clientStartSeconds
                ? nil : Sample(seconds: sample.seconds - leecher.clientStartSeconds, bytes: sample.bytes)
        }
        let firstPiece = Int64(min(pieceBytes, payloadBytes))
        measurement.firstPieceSeconds = measurement.samples.first { $0.bytes >= firstPiece }?.seconds
        ExternalCommand.removeTree(leecher.target)
        return measurement
    }
}
