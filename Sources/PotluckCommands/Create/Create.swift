import ArgumentParser
import CommandSupport
import Glibc
import Hashing
import Metainfo

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make a .torrent file from a file or a folder.",
        discussion: """
            Hashes on every core, with a progress bar on a terminal, then prints the infohash and the \
            magnet link. Data already in the page cache in huge pages is hashed in place through a \
            read-only mapping; the rest is read through io_uring. Folders are walked in byte order of \
            names; symbolic links and special files are skipped (and listed). v1 is the default because \
            Transmission 3 and many trackers reject v2 and hybrid torrents.
            """)

    enum TorrentFormat: String, EnumerableFlag {
        case v1, v2, hybrid

        static func help(for value: TorrentFormat) -> ArgumentHelp? {
            switch value {
            case .v1: "BitTorrent v1 (BEP 3): SHA-1 pieces (default)"
            case .v2: "BitTorrent v2 (BEP 52): SHA-256 merkle trees per file"
            case .hybrid: "Both in one file, with padding so both views share piece boundaries"
            }
        }
    }

    @Argument(help: "The file or folder to share.", completion: .file())
    var path: String

    @Option(name: .shortAndLong, help: "Where to write the torrent (default: NAME.torrent here).")
    var output: String?

    @Option(
        help: ArgumentHelp(
            "Piece size: auto, or bytes with an optional K/M suffix (power of two, 16K to 16M).",
            valueName: "auto|SIZE"))
    var pieceSize: String = "auto"

    @Option(
        name: .customLong("tracker"),
        help: "Announce URL; repeat for more tiers, or separate URLs of one tier with commas.")
    var trackers: [String] = []

    @Option(name: .customLong("web-seed"), help: "Web seed URL (BEP 19); repeatable.")
    var webSeeds: [String] = []

    @Flag(help: "Mark the torrent private (BEP 27): peers come from its trackers only.")
    var `private` = false

    @Flag(exclusivity: .exclusive)
    var format: TorrentFormat = .v1

    @Option(help: "A comment stored in the torrent.")
    var comment: String?

    @Option(
        help: "A source tag stored in the info dictionary (changes the infohash; private trackers use it).")
    var source: String?

    @Flag(name: .shortAndLong, help: "Overwrite the output file if it exists.")
    var force = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    @Option(help: "Hashing threads (default: one per core).")
    var threads: Int = HashPool.coreCount

    func validate() throws {
        if pieceSize != "auto" {
            guard let bytes = Self.parseSize(pieceSize) else {
                throw ValidationError("--piece-size must be auto or a size such as 256K, 1M or 262144")
            }
            guard bytes >= 16 << 10, bytes <= 16 << 20, bytes & (bytes - 1) == 0 else {
                throw ValidationError("--piece-size must be a power of two from 16K to 16M, not \(pieceSize)")
            }
        }
        guard threads > 0 && threads <= 256 else { throw ValidationError("--threads must be in 1...256") }
    }

    /// 16K, 1M, 4m, 262144.
    static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased()
        let suffixes: [(String, Int)] = [("kib", 10), ("mib", 20), ("k", 10), ("m", 20)]
        for (suffix, shift) in suffixes where lower.hasSuffix(suffix) {
            return Int(lower.dropLast(suffix.count)).map { $0 << shift }
        }
        return Int(lower)
    }

    func run() throws {
        let (name, files) = try catchingCreationFailure { () throws(TorrentCreator.Failure) in
            try TorrentCreator.inputs(at: path) { printError("skipped (not a regular file): \($0)") }
        }
        let total = files.reduce(Int64(0)) { $0 + $1.length }
        guard total > 0 else {
            printError("potluck: \(path) holds only empty files; a torrent needs at least one byte")
            throw ExitCode(1)
        }
        let pieceLength =
            pieceSize == "auto"
            ? TorrentBuilder.automaticPieceLength(totalLength: total) : Self.parseSize(pieceSize)!
        let builderFormat: TorrentBuilder.Format =
            switch format {
            case .v1: .v1
            case .v2: .v2
            case .hybrid: .hybrid
            }
        var builder = TorrentBuilder(
            name: name,
            files: files.map { TorrentBuilder.File(path: $0.torrentPath, length: $0.length) },
            pieceLength: pieceLength, format: builderFormat)
        builder.trackers = trackers.map { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        builder.webSeeds = webSeeds
        builder.isPrivate = `private`
        builder.comment = comment
        builder.source = source
        builder.createdBy = "Potluck \(Potluck.version)"
        builder.creationDate = Int64(time(nil))

        let destination = output ?? "\(name).torrent"
        if !force && access(destination, F_OK) == 0 {
            printError("potluck: \(destination) exists; use --force to overwrite it")
            throw ExitCode(1)
        }

        var progress = ProgressLine(label: "hashing", quiet: quiet)
        let started = ContinuousClock.now
        let creator = TorrentCreator(name: name, files: files, builder: builder)
        let finished = try catchingCreationFailure { () throws(TorrentCreator.Failure) in
            try creator.run(threads: threads) { progress.update(done: $0.hashedBytes, total: $0.totalBytes) }
        }
        progress.finish()
        let bytes: [UInt8]
        let metainfo: Metainfo
        do {
            bytes = try finished.build()
            metainfo = try Metainfo(bytes: bytes)
        } catch {
            printError("potluck: cannot build the torrent: \(error)")
            throw ExitCode(1)
        }
        try writeAtomically(bytes, to: destination)
        let elapsed = seconds(ContinuousClock.now - started)
        print("created \(destination)")
        let fileCount = files.count == 1 ? "1 file" : "\(files.count) files"
        let pieces = "\(metainfo.pieceCount) pieces of \(Format.bytes(metainfo.pieceLength))"
        print("  \(fileCount), \(Format.size(total)), \(pieces), hashed in \(Format.fixed(elapsed, 2)) s")
        if let v1 = metainfo.infoHashV1 { print("  infohash v1: \(v1)") }
        if let v2 = metainfo.infoHashV2 { print("  infohash v2: \(v2)") }
        print("  magnet: \(metainfo.magnetLink.uri)")
    }

    private func catchingCreationFailure<T>(_ body: () throws(TorrentCreator.Failure) -> T) throws -> T {
        do {
            return try body()
        } catch {
            printError("potluck: \(error.description)")
            throw ExitCode(1)
        }
    }

    /// Temp file, fsync, rename: a crash never leaves a half-written torrent under the final name.
    private func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".part-\(getpid())"
        let fd = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            printError("potluck: cannot write \(path): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            printError("potluck: cannot write \(path): \(reason)")
            throw ExitCode(1)
        }
    }
}
