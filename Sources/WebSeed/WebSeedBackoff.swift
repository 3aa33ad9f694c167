/// How long a web seed rests after a failure that does not condemn it (a dropped connection, a server
/// error, "busy"): doubling from 1 s up to ``maxSeconds``, or longer when the server asked for more
/// with `Retry-After` (within ``maxRetryAfterSeconds``). Never shorter: a server answering every request
/// "busy, retry after 0 s" would otherwise be asked once a second for ever. A fetch that completes
/// starts the count over.
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
        let doubling = min(1 << min(failures - 1, 16), Self.maxSeconds)
        guard let retryAfterSeconds else { return doubling }
        return max(doubling, min(retryAfterSeconds, Self.maxRetryAfterSeconds))
    }

    /// A fetch completed.
    public mutating func succeeded() { failures = 0 }
}
