import CLinux
import CommandSupport
import Foundation
import Glibc
import Locking

/// A child started in its own process group, with its output going to a log file and a pipe on its
/// standard input that stays open until `stop()` (the harness tools run until their stdin closes).
///
/// Wrapped in `setpriv --pdeathsig KILL` when util-linux has it, so that a benchmark killed with
/// SIGKILL takes its seeders along; spawn from the thread that lives longest (the main thread): the
/// kernel sends that signal when the spawning thread exits. Used from one thread at a time, except
/// `killGroup()`, which a signal-handling thread may call.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let logPath: String
    let started = ContinuousClock.now
    /// CLOCK_MONOTONIC seconds at the spawn: the clock the harness tools' progress files use.
    let startedMonotonicSeconds: Double = {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return seconds(now)
    }()
    /// Shared by the thread that watches the child and the one that stops every child on a signal
    /// (`BenchRun.catchSignals`): both reap and stop.
    private struct Shared {
        var inputWrite: Int32
        var exitStatus: Int32?
        var usage = rusage()
        var exitedAt: ContinuousClock.Instant?
    }
    private let shared: Lock<Shared>
    var exitStatus: Int32? { shared.withLock { $0.exitStatus } }
    var usage: rusage { shared.withLock { $0.usage } }
    /// When the child exited, taken as it happens by a thread that waits for it: the benchmarks look
    /// at their children every 100 ms, and a transfer timed by those looks came out up to 100 ms long.
    var exitedAt: ContinuousClock.Instant? { shared.withLock { $0.exitedAt } }

    init(_ executable: String, _ arguments: [String], logPath: String) throws {
        self.logPath = logPath
        var pipeEnds: [Int32] = [-1, -1]
        // Close-on-exec from the start, as `ExternalCommand.run` makes its pipe.
        guard potluck_pipe_cloexec(&pipeEnds) == 0 else {
            throw ExternalCommand.Failure(description: "pipe failed: errno \(errno)")
        }
        defer { close(pipeEnds[0]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let wrapper = Self.setpriv
        let command =
            wrapper.map { [$0, "--pdeathsig", "KILL", "--", executable] + arguments }
            ?? [executable] + arguments
        var pid: pid_t = 0
        let spawned = ExternalCommand.spawn(&pid, command, actions: &actions)
        guard spawned == 0 else {
            close(pipeEnds[1])
            throw ExternalCommand.Failure(description: "cannot run \(executable): errno \(spawned)")
        }
        self.pid = pid
        shared = Lock(Shared(inputWrite: pipeEnds[1]))
        let child = pid
        Thread.detachNewThread { [weak self] in
            // WNOWAIT: the child stays to be reaped (with its rusage) by `reap`.
            var info = siginfo_t()
            guard waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) == 0 else { return }
            let now = ContinuousClock.now
            self?.shared.withLock { $0.exitedAt = $0.exitedAt ?? now }
        }
    }

    private static let setpriv: String? = access("/usr/bin/setpriv", X_OK) == 0 ? "/usr/bin/setpriv" : nil

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The first line of the log that is a JSON object (the harness tools' ready or result line).
    var firstJSON: [String: Any]? {
        log.split(separator: "\n").lazy.filter { $0.hasPrefix("{") }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.first
    }

    /// The last line of the log that is a JSON object.
    var lastJSON: [String: Any]? {
        log.split(separator: "\n").reversed().lazy.filter { $0.hasPrefix("{") }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.first
    }

    /// Waits until `found` returns a value for the log's text, the child exits, or time runs out.
    func waitForLog<T>(timeoutSeconds: Double, _ found: (String) -> T?) -> T? {
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        while ContinuousClock.now < deadline {
            if let value = found(log) { return value }
            if reap() { return found(log) }
            usleep(50_000)
        }
        return nil
    }

    /// Collects the exit status and resource usage if the child has exited; true once it has.
    @discardableResult
    func reap() -> Bool {
        shared.withLock { shared in
            if shared.exitStatus != nil { return true }
            var status: Int32 = 0
            let result = wait4(pid, &status, WNOHANG, &shared.usage)
            guard result == pid else { return result < 0 && errno == ECHILD }
            shared.exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            // Reaped before the waiting thread saw the exit: now is the best we know.
            shared.exitedAt = shared.exitedAt ?? ContinuousClock.now
            return true
        }
    }

    /// User + system CPU seconds from the reaped child's rusage (its waited-for descendants included).
    var reapedCPUSeconds: Double { cpuSeconds(usage) }

    /// Asks the child to stop (stdin closed, then SIGTERM), waits up to `graceSeconds`, then kills
    /// its whole process group.
    func stop(graceSeconds: Double = 10) {
        shared.withLock { shared in
            if shared.inputWrite >= 0 {
                close(shared.inputWrite)
                shared.inputWrite = -1
            }
        }
        if !reap() {
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(graceSeconds)
            while !reap() && ContinuousClock.now < deadline { usleep(20_000) }
        }
        killGroup()
        if !reap() {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            shared.withLock { $0.exitStatus = $0.exitStatus ?? 137 }
        }
    }

    /// SIGKILL to the child's process group (safe from any thread).
    func killGroup() { kill(-pid, SIGKILL) }

    deinit {
        if exitStatus == nil { stop(graceSeconds: 2) }
        shared.withLock { if $0.inputWrite >= 0 { close($0.inputWrite) } }
    }
}

/// What /proc says about a live process.
enum ProcFS {
    /// User + system CPU seconds of the process and its reaped children.
    static func cpuSeconds(_ pid: pid_t) -> Double? {
        guard let fields = statFields(pid), fields.count > 14 else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (11...14).reduce(0.0) { $0 + (Double(fields[$1]) ?? 0) } / ticks
    }

    /// Peak resident set size (VmHWM) in KiB.
    static func peakResidentKiB(_ pid: pid_t) -> Int? { statusKiB(pid, "VmHWM") }

    /// Resident anonymous memory (RssAnon) in KiB: the heap and stacks, without mapped files.
    static func anonymousResidentKiB(_ pid: pid_t) -> Int? { statusKiB(pid, "RssAnon") }

    /// A "NAME: N kB" field of /proc/PID/status.
    private static func statusKiB(_ pid: pid_t, _ field: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
            return nil
        }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    /// Threads of a live process.
    static func threads(_ pid: pid_t) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"))?.count
    }

    /// Open descriptors of a live process.
    static func descriptors(_ pid: pid_t) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    /// The short command name (at most 15 characters).
    static func name(_ pid: pid_t) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    /// Every live descendant of `root`, found through the parent links in /proc.
    static func descendants(of root: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var parents: [pid_t: pid_t] = [:]
        for entry in entries {
            guard let pid = pid_t(entry), let fields = statFields(pid), fields.count > 1,
                let parent = pid_t(fields[1])
            else { continue }
            parents[pid] = parent
        }
        var found: [pid_t] = []
        var frontier: Set<pid_t> = [root]
        while !frontier.isEmpty {
            let children = parents.filter { frontier.contains($0.value) }.map(\.key)
            found += children
            frontier = Set(children)
        }
        return found
    }

    /// The fields of /proc/PID/stat after the command name: state is [0], ppid [1], utime [11].
    private static func statFields(_ pid: pid_t) -> [String]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ").map(String.init)
    }
}

/// Payload bytes on disk under a folder: each file's allocated blocks, at most its size. Progress
/// measured the same way for every client (they all write sparse files), without asking them.
enum DiskProgress {
    static func bytes(under path: String) -> Int64 {
        var total: Int64 = 0
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        for case let item as String in walker {
            let name = (item as NSString).lastPathComponent
            // Resume data, aria2's control files: not payload.
            if name.hasPrefix(".") || name.hasSuffix(".aria2") { continue }
            var info = stat()
            guard lstat(path + "/" + item, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            total += min(Int64(info.st_blocks) * 512, Int64(info.st_size))
        }
        return total
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
