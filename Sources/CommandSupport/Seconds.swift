import Glibc

// Seconds as a `Double` from every clock and counter the commands and benchmarks read: one place for
// the arithmetic, so that no report converts a duration its own way.

/// A `Duration` in seconds (negative for a negative duration).
public func seconds(_ duration: Duration) -> Double {
    let (whole, attoseconds) = duration.components
    return Double(whole) + Double(attoseconds) / 1e18
}

/// A `timespec` (`clock_gettime`) in seconds.
public func seconds(_ time: timespec) -> Double {
    Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// A `timeval` (`getrusage`, `wait4`) in seconds.
public func seconds(_ time: timeval) -> Double {
    Double(time.tv_sec) + Double(time.tv_usec) / 1e6
}

/// User plus system CPU time of a `rusage`, in seconds.
public func cpuSeconds(_ usage: rusage) -> Double {
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
