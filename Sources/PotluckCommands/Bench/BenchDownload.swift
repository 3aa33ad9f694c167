import ArgumentParser
import Foundation
import Glibc
import Hashing

struct BenchDownload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Leecher comparison: Potluck, libtorrent, Transmission and aria2 from the same seeders.",
        discussion: """
            Makes one payload file and a v1 torrent of it, starts --seeders libtorrent seeders, then has \
            each installed client download it in turn into an empty folder (page cache dropped before \
            each, when running as root). Seeders listen on addresses of a network namespace's root-side \
            veth, so Transmission (which ignores 127.x peers and keeps one peer per address) can take \
            part from inside that namespace; the others reach the same addresses from the root namespace. \
            Every download is compared byte for byte with the payload; a failed or timed-out client is \
            shown as such. CPU is the leecher's user+system time; the seeders are not counted. Needs root \
            and the interop harness in Tests/Interop (found next to the build, or give --harness).
            """)

    @Option(name: .customLong("size-mib"), help: "Payload size in MiB.")
    var sizeMiB: Int = 1024

    @Option(name: .customLong("piece-kib"), help: "Piece size in KiB.")
    var pieceKiB: Int = 1024

    @Option(help: "libtorrent seeders.")
    var seeders: Int = 4

    @Option(
        parsing: .upToNextOption,
        help: "Clients to measure, in order (potluck, libtorrent, transmission, aria2).")
    var clients: [String] = ["potluck", "libtorrent", "transmission", "aria2"]

    @Option(help: "Seconds each client may take.")
    var timeout: Int = 300

    @Option(help: "Directory for the payload and downloads (removed afterwards).")
    var directory: String = "/var/tmp"

    @Option(help: "The interop harness folder (Tests/Interop of the source tree).")
    var harness: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard sizeMiB > 0 && sizeMiB <= 1 << 20 else {
            throw ValidationError("--size-mib must be in 1...1048576")
        }
        guard pieceKiB >= 16 && pieceKiB <= 16384 && pieceKiB & (pieceKiB - 1) == 0 else {
            throw ValidationError("--piece-kib must be a power of two from 16 to 16384")
        }
        guard seeders >= 1 && seeders <= 16 else { throw ValidationError("--seeders must be in 1...16") }
        let known: Set = ["potluck", "libtorrent", "transmission", "aria2"]
        for client in clients where !known.contains(client) {
            throw ValidationError("unknown client \(client); known: potluck, libtorrent, transmission, aria2")
        }
    }

    struct Result {
        let client: String
        let version: String
        var status: String
        var wallSeconds: Double = 0
        var cpuSeconds: Double = 0
        var peakResidentKiB = 0
    }

    func run() throws {
        guard getuid() == 0 else {
            printError("potluck: bench download needs root (network namespaces, dropping the page cache)")
            throw ExitCode(1)
        }
        guard let harness = harness ?? Self.findHarness() else {
            printError("potluck: cannot find the interop harness (Tests/Interop); give --harness DIR")
            throw ExitCode(1)
        }
        let workspace = directory + "/potluck-bench-download-\(getpid())"
        guard mkdir(workspace, 0o700) == 0 else {
            printError("potluck: cannot create \(workspace): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        var namespace: String?
        var seederProcesses: [BackgroundProcess] = []
        defer {
            for process in seederProcesses { process.stop() }
            if let namespace {
                _ = try? ExternalCommand.run(
                    "/usr/bin/python3", [harness + "/netns.py", "delete", namespace])
            }
            ExternalCommand.removeTree(workspace)
        }

        let seedDirectory = workspace + "/seed"
        mkdir(seedDirectory, 0o700)
        let payload = seedDirectory + "/payload.bin"
        printError("writing a \(Format.bytes(sizeMiB << 20)) payload and its torrent...")
        try BenchCreate.writePayload(payload, bytes: sizeMiB << 20)
        let torrent = workspace + "/payload.torrent"
        let created = try ExternalCommand.run(
            ExternalCommand.currentExecutable(),
            ["create", "--quiet", "--v1", "--piece-size", "\(pieceKiB << 10)", "-o", torrent, payload])
        guard created.status == 0 else {
            printError("potluck: cannot create the benchmark torrent")
            throw ExitCode(1)
        }

        // One address per seeder on the root side of a namespace's veth pair.
        let made = try ExternalCommand.run(
            "/usr/bin/python3", [harness + "/netns.py", "create", "--root-addresses", "\(seeders)"])
        guard made.status == 0, let info = Self.jsonObject(made.standardOutput),
            let addresses = info["root_addresses"] as? [String], addresses.count >= seeders
        else {
            printError("potluck: cannot create the benchmark's network namespace")
            throw ExitCode(1)
        }
        namespace = info["netns"] as? String
        printError("starting \(seeders) libtorrent seeders...")
        var peers: [String] = []
        for address in addresses.prefix(seeders) {
            let seeder = try BackgroundProcess(
                "/usr/bin/python3",
                [
                    harness + "/lt.py", "seed", torrent, seedDirectory, "--count", "1", "--bind", address,
                    "--seed-mode",
                ])
            seederProcesses.append(seeder)
            guard let ready = seeder.ready?["peers"] as? [String] else {
                printError("potluck: a libtorrent seeder did not start")
                throw ExitCode(1)
            }
            peers += ready
        }

        var results: [Result] = []
        for client in clients {
            let target = workspace + "/\(client)"
            ExternalCommand.removeTree(target)
            mkdir(target, 0o700)
            Self.dropPageCache()
            printError("\(client) downloading...")
            results.append(
                measure(
                    client, torrent: torrent, target: target, peers: peers, harness: harness, payload: payload
                ))
        }
        report(results)
    }

    private func measure(
        _ client: String, torrent: String, target: String, peers: [String], harness: String, payload: String
    ) -> Result {
        let peerArguments = peers.flatMap { ["--peer", $0] }
        let executable: String
        let arguments: [String]
        let version: String
        switch client {
        case "potluck":
            executable = ExternalCommand.currentExecutable()
            arguments = ["download", "--quiet", torrent, "-o", target] + peerArguments
            version = Potluck.version
        case "libtorrent":
            executable = "/usr/bin/python3"
            arguments =
                [harness + "/lt.py", "download", torrent, target, "--timeout", "\(timeout)"] + peerArguments
            version = ExternalCommand.version(
                executable, ["-c", "import libtorrent; print(libtorrent.__version__)"])
        case "transmission":
            executable = "/usr/bin/python3"
            arguments =
                [harness + "/transmission.py", "download", torrent, target, "--timeout", "\(timeout)"]
                + peerArguments
            version =
                ExternalCommand.find("transmission-daemon").map { ExternalCommand.version($0, ["--version"]) }
                ?? "?"
        default:
            executable = "/usr/bin/python3"
            arguments =
                [harness + "/aria2.py", "download", torrent, target, "--timeout", "\(timeout)"]
                + peerArguments
            version = ExternalCommand.find("aria2c").map { ExternalCommand.version($0, ["--version"]) } ?? "?"
        }
        var result = Result(client: client, version: version, status: "failed")
        guard
            let output = try? ExternalCommand.run(executable, arguments, timeoutSeconds: Double(timeout) + 60)
        else {
            result.status = "timed out"
            return result
        }
        guard output.status == 0 else {
            result.status = "failed (exit \(output.status))"
            let lastLine = output.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
            printError("\(client) failed: \(lastLine)")
            return result
        }
        guard Self.sameBytes(payload, target + "/payload.bin") else {
            result.status = "wrong data"
            return result
        }
        result.status = "ok"
        // Potluck and libtorrent (in-process in its Python driver) are measured as whole processes, start
        // to exit. Transmission and aria2 run as grandchildren behind a namespace and a private tracker
        // the harness sets up first, so their drivers' own timing of the transfer and the client's CPU
        // time are used instead (a shade kinder to them).
        let reported =
            client == "transmission" || client == "aria2" ? Self.jsonObject(output.standardOutput) : nil
        result.wallSeconds = (reported?["seconds"] as? Double) ?? output.wallSeconds
        result.cpuSeconds = (reported?["cpu_seconds"] as? Double) ?? output.cpuSeconds
        result.peakResidentKiB = output.peakResidentKiB
        return result
    }

    private func report(_ results: [Result]) {
        let bytes = Double(sizeMiB << 20)
        let gib = bytes / Double(1 << 30)
        let reference = results.first { $0.client == "libtorrent" && $0.status == "ok" }
        var table = Table(
            "client", "version", "result", "MB/s", "CPU s/GiB", "peak RSS", "speed vs libtorrent",
            "CPU vs libtorrent")
        var rows: [[String: Any]] = []
        for result in results {
            guard result.status == "ok" else {
                table.add(result.client, result.version, result.status, "-", "-", "-", "-", "-")
                rows.append(["client": result.client, "version": result.version, "result": result.status])
                continue
            }
            let rate = bytes / result.wallSeconds / 1e6
            table.add(
                result.client, result.version, "ok", Format.fixed(rate, 1),
                Format.fixed(result.cpuSeconds / gib, 2),
                Format.size(Int64(result.peakResidentKiB) * 1024),
                reference.map { Format.fixed($0.wallSeconds / result.wallSeconds, 2) + "×" } ?? "-",
                reference.map { Format.fixed(result.cpuSeconds / $0.cpuSeconds, 2) + "×" } ?? "-")
            rows.append([
                "client": result.client, "version": result.version, "result": "ok",
                "megabytes_per_second": rate,
                "cpu_seconds_per_gib": result.cpuSeconds / gib, "peak_rss_kib": result.peakResidentKiB,
            ])
        }
        print(
            "Leecher comparison: \(Format.bytes(sizeMiB << 20)) in \(Format.bytes(pieceKiB << 10)) pieces from "
                + "\(seeders) libtorrent seeders, \(HashPool.coreCount) cores\n")
        print(table.rendered)
        if let json,
            let data = try? JSONSerialization.data(
                withJSONObject: ["results": rows], options: [.prettyPrinted, .sortedKeys])
        {
            if !FileManager.default.createFile(atPath: json, contents: data) {
                printError("potluck: cannot write \(json)")
            }
        }
    }

    static func findHarness() -> String? {
        var directory = URL(fileURLWithPath: ExternalCommand.currentExecutable()).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent("Tests/Interop")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("lt.py").path) {
                return candidate.path
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    static func jsonObject(_ text: String) -> [String: Any]? {
        let line = text.split(separator: "\n").last { $0.hasPrefix("{") }
        return line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Cold start for every client: nothing of the payload in the page cache (root only).
    static func dropPageCache() {
        sync()
        if let handle = FileHandle(forWritingAtPath: "/proc/sys/vm/drop_caches") {
            handle.write(Data("3\n".utf8))
            try? handle.close()
        }
    }

    static func sameBytes(_ a: String, _ b: String) -> Bool {
        guard let first = FileHandle(forReadingAtPath: a), let second = FileHandle(forReadingAtPath: b) else {
            return false
        }
        defer {
            try? first.close()
            try? second.close()
        }
        while true {
            let x = first.readData(ofLength: 1 << 20)
            let y = second.readData(ofLength: 1 << 20)
            if x != y { return false }
            if x.isEmpty { return true }
        }
    }
}

/// A long-running helper (a seeder) started with a pipe on stdin: it prints one JSON line when ready
/// and runs until stdin closes. Used from one thread at a time.
final class BackgroundProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private(set) var ready: [String: Any]?

    init(_ executable: String, _ arguments: [String], timeoutSeconds: Double = 300) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        ready = try? JSONSerialization.jsonObject(with: line) as? [String: Any]
    }

    /// Kills it outright (a seeder dying mid-transfer, in tests).
    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        guard process.isRunning else { return }
        try? input.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}
