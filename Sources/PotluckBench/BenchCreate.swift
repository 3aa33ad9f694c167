import ArgumentParser
import CommandSupport
import Engine
import Glibc
import Hashing

struct BenchCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Torrent creation speed beside mktorrent, libtorrent and transmission-create.",
        discussion: """
            Writes one payload file, then makes a v1 torrent of it with each installed tool in turn \
            (warm page cache, so hashing is measured, not the disk), alternating for --rounds rounds and \
            reporting the median. Each tool runs as its own process and is measured whole: wall time, \
            CPU time and peak memory. The SHA-1 limit is one core's hashing rate (as `bench hash` \
            measures it; sixteen pieces at once in AVX-512 lanes where the CPU has them, as Potluck \
            hashes here) times the number of cores.

            How the file came into the page cache matters to Potluck, which hashes data held in huge \
            pages in place: `written` keeps the cache as the payload's 1 MiB writes left it (1 MiB \
            folios on recent kernels), `read` drops it and reads the file back the way any program \
            reading it from disk would (read-ahead fills 2 MiB folios where the kernel can).
            """)

    enum PageCache: String, ExpressibleByArgument, CaseIterable {
        case written, read, both
    }

    @Option(name: .customLong("size-mib"), help: "Payload size in MiB.")
    var sizeMiB: Int = 2048

    @Option(name: .customLong("piece-kib"), help: "Piece size in KiB.")
    var pieceKiB: Int = 1024

    @Option(help: "Rounds per tool; the median is reported.")
    var rounds: Int = 3

    @Option(help: "Directory for the payload and torrents (removed afterwards).")
    var directory: String = "/var/tmp"

    @Option(
        name: .customLong("page-cache"),
        help: "How the payload is cached: as written, read back from disk, or both in turn (two tables).")
    var pageCache: PageCache = .both

    func validate() throws {
        guard sizeMiB > 0 && sizeMiB <= 1 << 20 else {
            throw ValidationError("--size-mib must be in 1...1048576")
        }
        guard pieceKiB >= 16 && pieceKiB <= 16384 && pieceKiB & (pieceKiB - 1) == 0 else {
            throw ValidationError("--piece-kib must be a power of two from 16 to 16384")
        }
        guard rounds > 0 && rounds <= 20 else { throw ValidationError("--rounds must be in 1...20") }
    }

    struct Tool {
        let name: String
        let version: String
        let arguments: (_ payload: String, _ torrent: String) -> [String]
        let executable: String
    }

    /// libtorrent's create_torrent through its Python binding, v1 only like the others.
    static let libtorrentScript = """
        import sys, os, libtorrent as lt
        payload, out, piece = sys.argv[1], sys.argv[2], int(sys.argv[3])
        fs = lt.file_storage()
        lt.add_files(fs, payload)
        t = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
        lt.set_piece_hashes(t, os.path.dirname(payload))
        open(out, "wb").write(lt.bencode(t.generate()))
        """

    func run() throws {
        let cores = HashPool.coreCount
        let pieceBytes = pieceKiB << 10
        let workspace = directory + "/potluck-bench-create-\(getpid())"
        guard mkdir(workspace, 0o700) == 0 else {
            printError("potluck: cannot create \(workspace): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        defer { _ = ExternalCommand.removeTree(workspace) }
        let payload = workspace + "/payload.bin"
        printError("writing a \(Format.bytes(sizeMiB << 20)) payload...")
        try Self.writePayload(payload, bytes: sizeMiB << 20)

        let tools = availableTools(cores: cores, pieceBytes: pieceBytes)
        let lanesRate = BenchHash.lanesPerCoreRate(pieceBytes: pieceBytes, seconds: 1)
        let limit = Double(cores) * (lanesRate ?? BenchHash.perCoreRate(pieceBytes: pieceBytes, seconds: 1))
        let limitBasis = lanesRate == nil ? "one core's rate" : "one core's rate, sixteen pieces at once"
        if pageCache != .read {
            try measure(
                tools, payload: payload, workspace: workspace, limit: limit, limitBasis: limitBasis,
                cache: "as written")
        }
        if pageCache != .written {
            printError("dropping the payload from the page cache and reading it back...")
            try Self.readBack(payload)
            if pageCache == .both { print() }
            try measure(
                tools, payload: payload, workspace: workspace, limit: limit, limitBasis: limitBasis,
                cache: "read back")
        }
    }

    /// Runs every tool `rounds` times on the payload and prints the medians.
    private func measure(
        _ tools: [Tool], payload: String, workspace: String, limit: Double, limitBasis: String, cache: String
    ) throws {
        let cores = HashPool.coreCount
        let pieceBytes = pieceKiB << 10
        var results: [String: [ExternalCommand.Output]] = [:]
        for round in 1...rounds {
            for tool in tools {
                printError("round \(round)/\(rounds): \(tool.name)...")
                let torrent = workspace + "/\(tool.name).torrent"
                unlink(torrent)
                let output = try ExternalCommand.run(
                    tool.executable, tool.arguments(payload, torrent), timeoutSeconds: 600)
                guard output.status == 0, access(torrent, F_OK) == 0 else {
                    printError("\(tool.name) failed (exit status \(output.status)); it is shown as failed")
                    results[tool.name, default: []].append(output)
                    continue
                }
                results[tool.name, default: []].append(output)
            }
        }

        let bytes = Double(sizeMiB << 20)
        let potluckMedian = results["potluck"].flatMap(Self.medianSucceeded)
        var table = Table(
            "tool", "version", "wall s", "GB/s", "CPU s", "peak RSS", "potluck speed-up", "% of SHA-1 limit")
        for tool in tools {
            guard let runs = results[tool.name], let median = Self.medianSucceeded(runs) else {
                table.add(tool.name, tool.version, "failed", "-", "-", "-", "-", "-")
                continue
            }
            let rate = bytes / median.wallSeconds
            table.add(
                tool.name, tool.version, Format.fixed(median.wallSeconds, 2), Format.fixed(rate / 1e9, 2),
                Format.fixed(median.cpuSeconds, 2), Format.size(Int64(median.peakResidentKiB) * 1024),
                potluckMedian.map { Format.fixed(median.wallSeconds / $0.wallSeconds, 2) + "×" } ?? "-",
                Format.percent(rate / limit))
        }
        print(
            "Torrent creation, \(Format.bytes(sizeMiB << 20)) file, \(Format.bytes(pieceBytes)) pieces, v1, warm cache (\(cache)), \(cores) cores"
        )
        print("SHA-1 limit: \(Format.gigabytesPerSecond(limit)) (\(limitBasis) × \(cores))\n")
        print(table.rendered)
    }

    /// The run with the median wall time among those that succeeded.
    static func medianSucceeded(_ runs: [ExternalCommand.Output]) -> ExternalCommand.Output? {
        medianElement(runs.filter { $0.status == 0 }, by: \.wallSeconds)
    }

    private func availableTools(cores: Int, pieceBytes: Int) -> [Tool] {
        var tools: [Tool] = []
        let pieceExponent = pieceBytes.trailingZeroBitCount
        tools.append(
            Tool(
                name: "potluck", version: potluckVersion,
                arguments: { payload, torrent in
                    [
                        "create", "--quiet", "--v1", "--force", "--piece-size", "\(pieceBytes)", "-o",
                        torrent, payload,
                    ]
                }, executable: ExternalCommand.currentExecutable()))
        if let mktorrent = ExternalCommand.find("mktorrent") {
            tools.append(
                Tool(
                    name: "mktorrent", version: ExternalCommand.version(mktorrent, ["-v"]),
                    arguments: { payload, torrent in
                        ["-t", "\(cores)", "-l", "\(pieceExponent)", "-o", torrent, payload]
                    }, executable: mktorrent))
        } else {
            printError("mktorrent is not installed (Debian package `mktorrent`): skipped")
        }
        if access("/usr/bin/python3", X_OK) == 0,
            (try? ExternalCommand.run("/usr/bin/python3", ["-c", "import libtorrent"]).status) == 0
        {
            let version = ExternalCommand.version(
                "/usr/bin/python3", ["-c", "import libtorrent; print(libtorrent.__version__)"])
            tools.append(
                Tool(
                    name: "libtorrent", version: version,
                    arguments: { payload, torrent in
                        ["-c", Self.libtorrentScript, payload, torrent, "\(pieceBytes)"]
                    }, executable: "/usr/bin/python3"))
        } else {
            printError(
                "libtorrent's Python binding is not installed (Debian package `python3-libtorrent`): skipped")
        }
        if let transmission = ExternalCommand.find("transmission-create") {
            tools.append(
                Tool(
                    name: "transmission-create",
                    version: ExternalCommand.version(transmission, ["--version"]),
                    arguments: { payload, torrent in ["-s", "\(pieceBytes >> 10)", "-o", torrent, payload] },
                    executable: transmission))
        } else {
            printError("transmission-create is not installed (Debian package `transmission-cli`): skipped")
        }
        return tools
    }

    /// Writes `path` back to disk, drops it from the page cache, and reads it once in 128 KiB reads (as
    /// `cat` does), so the cache holds it as the kernel's read-ahead fills it.
    static func readBack(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, fdatasync(fd) == 0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 else {
            printError(
                "potluck: cannot drop \(path) from the page cache: \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        defer { close(fd) }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 << 10, alignment: 4096)
        defer { chunk.deallocate() }
        while true {
            let count = read(fd, chunk.baseAddress, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                printError("potluck: cannot read \(path): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            if count == 0 { return }
        }
    }

    /// Pseudo-random content, written in 1 MiB blocks; a different (nonzero) `seed` gives different
    /// content.
    static func writePayload(_ path: String, bytes: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) throws {
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            printError("potluck: cannot write \(path): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        defer { close(fd) }
        var block = [UInt64](repeating: 0, count: (1 << 20) / 8)
        var state = seed
        var written = 0
        while written < bytes {
            for i in block.indices {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                block[i] = state
            }
            let count = min(1 << 20, bytes - written)
            let result = block.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, count) }
            guard result == count else {
                printError("potluck: cannot write \(path): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            written += count
        }
    }
}
