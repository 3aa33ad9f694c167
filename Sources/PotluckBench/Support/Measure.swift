import CommandSupport
import Glibc

/// CPU time of this process (user + system), for CPU-per-byte figures measured in the same run.
enum ProcessCPU {
    static func seconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return cpuSeconds(usage)
    }
}

/// CPU time of the calling thread.
enum ThreadCPU {
    static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return CommandSupport.seconds(now)
    }
}

/// Wall and CPU time of one measured section.
struct Stopwatch {
    private let wallStart = ContinuousClock.now
    private let cpuStart = ProcessCPU.seconds()

    var wallSeconds: Double { seconds(ContinuousClock.now - wallStart) }

    var cpuSeconds: Double { ProcessCPU.seconds() - cpuStart }
}
