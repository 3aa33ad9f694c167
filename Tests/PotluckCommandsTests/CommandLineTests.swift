import Dispatch
import Foundation
import Glibc
import Testing

@testable import PotluckBench
@testable import PotluckCommands

/// The built `potluck` binary, which SwiftPM puts beside the test bundle. Every `potluck` the tests run
/// keeps its DHT table in a cache folder of this test process (see `isolatedCache`).
func potluckExecutable() -> URL {
    _ = isolatedCache
    return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("potluck")
}

/// Children inherit it: the DHT tables they keep stay out of the user's cache, and one run's loopback
/// nodes are not asked by the next.
private let isolatedCache: Void = {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
        "potluck-tests-cache-\(getpid())")
    setenv("XDG_CACHE_HOME", folder.path, 1)
}()

/// Runs the built `potluck` binary, or another copy of it, from the test's working directory or
/// `workingDirectory`. One that runs longer than `timeoutSeconds` is killed (SIGKILL), so that a
/// download waiting for peers that never come fails its test instead of stalling the suite.
func runPotluck(
    _ arguments: [String], executable: URL = potluckExecutable(), workingDirectory: URL? = nil,
    environment: [String: String] = [:], timeoutSeconds: Double = 600
) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    if let workingDirectory { process.currentDirectoryURL = workingDirectory }
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let pid = process.processIdentifier
    let stacks = HungProcessStacks()
    let watchdog = DispatchWorkItem {
        stacks.record(pid)
        kill(pid, SIGKILL)
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeoutSeconds, execute: watchdog)
    defer { watchdog.cancel() }
    // Both at once: a child blocked on a full standard-error pipe would never close standard output.
    let errorData = BackgroundRead(error.fileHandleForReading)
    let outputData = readAll(output.fileHandleForReading)
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outputData, as: UTF8.self),
        String(decoding: errorData.wait(), as: UTF8.self) + stacks.text
    )
}

/// The threads' stacks of a command the watchdog kills, told after its standard error: a hang in CI
/// then says where it waited. Empty when gdb is missing or cannot attach.
final class HungProcessStacks: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded = ""

    func record(_ pid: pid_t) {
        // Bounded: a gdb that cannot attach must not keep the watchdog from killing the command.
        guard
            let gdb = try? ExternalCommand.run(
                "/usr/bin/gdb", ["-p", "\(pid)", "-batch", "-ex", "thread apply all bt 16"],
                timeoutSeconds: 60)
        else { return }
        let frames = gdb.standardOutput.split(separator: "\n").filter {
            $0.hasPrefix("Thread ") || $0.hasPrefix("#")
        }
        lock.withLock {
            recorded = "\nkilled after its timeout; its threads were at:\n" + frames.joined(separator: "\n")
        }
    }

    var text: String { lock.withLock { recorded } }
}

/// Everything until end of file, read with read(2): Foundation's `readDataToEndOfFile` traps when a
/// signal interrupts the read (EINTR), which the test process's children make likely.
func readAll(_ handle: FileHandle) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return data }
        data.append(contentsOf: buffer[..<count])
    }
}

/// `readAll` of one pipe on another thread.
final class BackgroundRead: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        DispatchQueue.global().async {
            self.data = readAll(handle)
            self.done.signal()
        }
    }

    /// What was read, once the pipe's writers have all closed it.
    func wait() -> Data {
        done.wait()
        return data
    }
}

@Suite struct CommandLineTests {
    @Test func helpExplainsAndVersionPrints() throws {
        let help = try runPotluck(["--help"])
        #expect(help.status == 0)
        #expect(help.output.contains("BitTorrent"))
        #expect(help.output.contains("bench"))
        let version = try runPotluck(["--version"])
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == Potluck.version)
    }

    @Test func aCommandKilledForHangingSaysWhereItsThreadsWere() throws {
        let result = try runPotluck(["30"], executable: URL(fileURLWithPath: "/bin/sleep"), timeoutSeconds: 1)
        #expect(result.status == SIGKILL)
        #expect(result.error.contains("its threads were at:\nThread 1 "), "\(result.error)")
        #expect(result.error.contains("sleep"), "\(result.error)")
    }

    @Test func benchHashPrintsATableWithEveryPieceSize() throws {
        let result = try runPotluck(["bench", "hash", "--seconds", "0.05", "--piece-size", "16", "64"])
        #expect(result.status == 0, "\(result.error)")
        let rows = result.output.split(separator: "\n").filter { $0.hasPrefix("| ") }
        #expect(rows.count == 3, "a header and one row per piece size")
        #expect(rows[1].hasPrefix("| 16 KiB"))
        #expect(rows[2].hasPrefix("| 64 KiB"))
        #expect(rows[1].contains("GB/s"))
    }

    @Test func invalidOptionsAreRejectedWithAReason() throws {
        let result = try runPotluck(["bench", "hash", "--piece-size", "3"])
        #expect(result.status != 0)
        #expect(result.error.contains("piece sizes must be between 16 and 65536 KiB"))
    }

    @Test func uploadSlotsAreBounded() throws {
        for command in ["download", "seed"] {
            let result = try runPotluck([command, "x.torrent", "--upload-slots", "5000"])
            #expect(result.status != 0)
            #expect(result.error.contains("--upload-slots must be between 0 and 1000"), "\(result.error)")
        }
        #expect(throws: Never.self) { try Seed.parse(["x.torrent", "--upload-slots", "8"]) }
    }
}

@Suite struct LimitParsingTests {
    @Test func ratesTakeBinaryMultiples() {
        #expect(LimitParsing.rateBytesPerSecond("0") == 0)
        #expect(LimitParsing.rateBytesPerSecond("1048576") == 1 << 20)
        #expect(LimitParsing.rateBytesPerSecond("500K") == 500 << 10)
        #expect(LimitParsing.rateBytesPerSecond("2M") == 2 << 20)
        #expect(LimitParsing.rateBytesPerSecond("1.5MiB/s") == 3 << 19)
        #expect(LimitParsing.rateBytesPerSecond("1g") == 1 << 30)
        #expect(LimitParsing.rateBytesPerSecond("-1") == nil)
        #expect(LimitParsing.rateBytesPerSecond("fast") == nil)
        #expect(LimitParsing.rateBytesPerSecond("1e300M") == nil)
    }

    @Test func durationsTakeUnits() {
        #expect(LimitParsing.seconds("90") == 90)
        #expect(LimitParsing.seconds("90s") == 90)
        #expect(LimitParsing.seconds("15m") == 900)
        #expect(LimitParsing.seconds("2h") == 7200)
        #expect(LimitParsing.seconds("1d") == 86400)
        #expect(LimitParsing.seconds("-5s") == nil)
        #expect(LimitParsing.seconds("soon") == nil)
    }

    @Test func seedLimitsNeedSeedAndValidValues() throws {
        let withoutSeed = try runPotluck([
            "download", "x.torrent", "--peer", "127.0.0.1:1", "--seed-time", "5s",
        ])
        #expect(withoutSeed.status != 0 && withoutSeed.error.contains("--seed"))
        let badRate = try runPotluck(["seed", "x.torrent", "--max-upload-rate", "lots"])
        #expect(badRate.status != 0 && badRate.error.contains("--max-upload-rate"))
    }
}
