import Glibc
import Locking
import Tracker

/// A torrent's ``TrackerStatusBook``, written by its announcer on the reactor when an exchange starts
/// or ends, and read by front ends (`Engine.trackerStatus(of:)`) only when they ask.
final class TrackerStatusBoard: Sendable {
    private let book = Lock(TrackerStatusBook())

    var statuses: [TrackerStatus] { book.withLock { $0.statuses } }

    func update(_ change: (inout TrackerStatusBook) -> Void) { book.withLock { change(&$0) } }

    /// Unix seconds now.
    static func wallClock() -> Int64 { Int64(time(nil)) }
}
