/// A point in time on the caller's monotonic clock, in nanoseconds from an arbitrary origin.
///
/// The protocol cores (peer wire, swarm, trackers) never read a clock: every event and tick carries
/// the current instant, so tests and simulations run on virtual time. Arithmetic saturates instead of
/// wrapping, because intervals can come from the network and a hostile one must not make a deadline
/// that lies in the past.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    /// The instant `nanoseconds` after the origin.
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The clock's origin; convenient for tests and simulations.
    public static let zero = Instant(nanoseconds: 0)

    /// An instant `seconds` after the origin.
    public static func seconds(_ seconds: Double) -> Instant {
        precondition(seconds >= 0, "instants before the origin do not exist")
        return Instant(nanoseconds: UInt64(seconds * 1e9))
    }

    public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    /// This instant moved forward by `delta` nanoseconds, saturating at the end of the clock.
    public func advanced(byNanoseconds delta: UInt64) -> Instant {
        let (sum, overflow) = nanoseconds.addingReportingOverflow(delta)
        return Instant(nanoseconds: overflow ? .max : sum)
    }

    /// This instant moved forward by `duration` (a negative one counts as zero).
    public func advanced(by duration: Duration) -> Instant {
        advanced(byNanoseconds: duration.nanosecondCount)
    }

    /// This instant moved forward by whole `seconds`, saturating.
    public func adding(seconds: UInt64) -> Instant {
        let (delta, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return advanced(byNanoseconds: overflow ? .max : delta)
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later (clocks given to us never run
    /// backwards, but a caller's mistake must not wrap around into a huge interval).
    public func nanoseconds(since earlier: Instant) -> UInt64 {
        nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
    }

    public var description: String { "t=\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// Whole nanoseconds, clamped at zero for negative durations and at the end of `UInt64`.
    public var nanosecondCount: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || overflow2 ? .max : sum
    }
}
