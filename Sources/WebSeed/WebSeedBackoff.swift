/// How long a web seed rests after a failure that does not condemn it (a dropped connection, a server
/// error, "busy"): doubling from 1 s up to ``maxSeconds``, or what the server asked for with
/// `Retry-After` within ``maxRetryAfterSeconds``. A fetch that completes starts the count over.
public struct WebSeedBackoff: Hashable, Sendable {
    /// The longest rest after repeated failures.
    public static let maxSeconds = 60
    /// The longest `Retry-After` honoured: a server asking for hours is asked again sooner.
    public static let maxRetryAfterSeconds = 300

    /// Failures since the last completed fetch.
    public private(set) var failures = 0

    public init() {}

    /// A failure: the seconds to wait before trying again.
    public mutating func failed(retryAfterSeconds: Int? = nil) -> Int {
        failures += 1
        if let retryAfterSeconds { return min(max(1, retryAfterSeconds), Self.maxRetryAfterSeconds) }
        return min(1 << min(failures - 1, 16), Self.maxSeconds)
    }

    /// A fetch completed.
    public mutating func succeeded() { failures = 0 }
}
