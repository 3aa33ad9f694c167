import CLinux
import CommandSupport
import Foundation
import Glibc

/// Runs another program to completion and captures its standard output (the other clients and tools
/// that benchmarks compare against).
///
/// Spawned with `posix_spawn`, a default signal mask and default handlers: a parent that blocks
/// signals (test runners do) must not pass that on, or a tool timing itself with `SIGALRM`, as
/// `openssl speed` does, never stops.
enum ExternalCommand {
    struct Output {
        let status: Int32
        let standardOutput: String
        /// Wall time from spawn to exit.
        let wallSeconds: Double
        /// User + system CPU time of the child (and of its own waited-for children).
        let cpuSeconds: Double
        /// Peak resident set size of the child, in KiB.
        let peakResidentKiB: Int
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The full path of `name` on PATH, or nil when it is not installed.
    static func find(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// The path of the running `potluck` binary, to measure it as a process like the other tools.
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return count > 0
            ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "potluck"
    }

    /// The first line a tool prints about its version (stdout), or "?" when it says nothing.
    static func version(_ executable: String, _ arguments: [String]) -> String {
        guard let output = try? run(executable, arguments, timeoutSeconds: 10, mergeStandardError: true)
        else {
            return "?"
        }
        // The first word that looks like a version number: 1.36.0, 3.00, 2.0.8.0.
        let words = output.standardOutput.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "(" })
        let version = words.first { word in word.first?.isNumber == true && word.contains(".") }
        return version.map { String($0.trimmingCharacters(in: CharacterSet.punctuationCharacters)) } ?? "?"
    }

    /// `rm -rf PATH`, for scratch folders.
    @discardableResult
    static func removeTree(_ path: String) -> Bool {
        (try? run("/bin/rm", ["-rf", path]).status) == 0
    }

    /// `posix_spawn` of `command` (its first element the program's path) in a process group of its own,
    /// with no signal blocked and every handler at its default. Returns `posix_spawn`'s result.
    static func spawn(
        _ pid: inout pid_t, _ command: [String], actions: inout posix_spawn_file_actions_t
    ) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        return posix_spawn(&pid, command[0], &actions, &attributes, argv, environ)
    }

    /// Runs `executable` and waits at most `timeoutSeconds`, after which it is killed and this throws.
    static func run(
        _ executable: String, _ arguments: [String], timeoutSeconds: Double = 120,
        mergeStandardError: Bool = false
    ) throws -> Output {
        var pipeEnds: [Int32] = [-1, -1]
        // Close-on-exec from the start (set afterwards, a child another thread spawns in between
        // inherits the pipe and holds it open), so that the read sees its end when this child exits.
        guard potluck_pipe_cloexec(&pipeEnds) == 0 else {
            throw Failure(description: "pipe failed: errno \(errno)")
        }
        defer { close(pipeEnds[0]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        if mergeStandardError {
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        var pid: pid_t = 0
        let started = ContinuousClock.now
        let spawned = spawn(&pid, [executable] + arguments, actions: &actions)
        close(pipeEnds[1])
        guard spawned == 0 else { throw Failure(description: "cannot run \(executable): errno \(spawned)") }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        var pollEntry = pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0)
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                kill(-pid, SIGKILL)
                var ignored: Int32 = 0
                waitpid(pid, &ignored, 0)
                throw Failure(description: "\(executable) did not finish within \(Int(timeoutSeconds)) s")
            }
            let ready = poll(&pollEntry, 1, Int32(min(1000, (seconds(remaining) * 1000).rounded(.up))))
            if ready <= 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            output.append(contentsOf: buffer[..<count])
        }
        var status: Int32 = 0
        var usage = rusage()
        wait4(pid, &status, 0, &usage)
        let elapsed = ContinuousClock.now - started
        let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(
            status: exitStatus, standardOutput: String(decoding: output, as: UTF8.self),
            wallSeconds: seconds(elapsed), cpuSeconds: cpuSeconds(usage), peakResidentKiB: usage.ru_maxrss)
    }
}
