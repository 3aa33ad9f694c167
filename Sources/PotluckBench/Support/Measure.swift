import Glibc

/// CPU time of this process (user + system), for CPU-per-byte figures measured in the same run.
enum ProcessCPU {
    static func seconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// CPU time of the calling thread.
enum ThreadCPU {
    static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

/// Wall and CPU time of one measured section.
struct Stopwatch {
    private let wallStart = ContinuousClock.now
    private let cpuStart = ProcessCPU.seconds()

    var wallSeconds: Double {
        let elapsed = ContinuousClock.now - wallStart
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    var cpuSeconds: Double { ProcessCPU.seconds() - cpuStart }
}
