import TorrentModel

/// The peers a torrent knows of (from trackers, the command line, later the DHT and peer exchange),
/// and for each whether it is connected, when it may be tried again, and whether it is banned. Pure:
/// the engine asks it whom to connect to and tells it how connections went.
///
/// Invariants: each address is listed once, in the order it was first heard of (connections are tried
/// in that order), except that once `maximumCandidates` are listed a new address takes the place of
/// one that failed and is not connected (so addresses that never answer, from a hostile DHT node say,
/// cannot shut out the good ones for ever); a banned address stays listed and is never offered again.
public struct PeerDirectory<Address: Hashable> {
    public struct Configuration: Sendable {
        /// Addresses kept at most: beyond, new ones replace failed ones, or are ignored when none has
        /// failed (a torrent never needs thousands).
        public var maximumCandidates = 2000
        /// A failed peer waits this long before its next try, doubling with each failure in a row.
        public var firstRetryDelay = Duration.seconds(1)
        public var maximumRetryDelay = Duration.seconds(60)

        public init() {}
    }

    private struct Entry {
        let address: Address
        var connected = false
        var banned = false
        var failures = 0
        var retryAt = Instant(nanoseconds: 0)
    }

    public let configuration: Configuration
    /// In the order heard of; `positions` finds an address's entry. Choosing whom to connect to walks
    /// the array without hashing an address.
    private var entries: [Entry] = []
    private var positions: [Address: Int] = [:]
    /// Where the search for a failed entry to replace goes on from, so that replacing is amortised O(1).
    private var replacementCursor = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Addresses listed (connected, waiting or banned).
    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Lists new addresses (those already listed are ignored, and so are those beyond the limit once
    /// no failed entry is left to replace); returns how many were new.
    @discardableResult
    public mutating func add<S: Sequence<Address>>(_ addresses: S) -> Int {
        var added = 0
        var mayReplace = true
        for address in addresses where positions[address] == nil {
            if entries.count < configuration.maximumCandidates {
                positions[address] = entries.count
                entries.append(Entry(address: address))
            } else if mayReplace, let index = failedEntryToReplace() {
                positions[entries[index].address] = nil
                positions[address] = index
                entries[index] = Entry(address: address)
            } else {
                mayReplace = false
                continue
            }
            added += 1
        }
        return added
    }

    /// An entry that failed and is neither connected nor banned, found by one turn at most around the
    /// list from where the last search stopped.
    private mutating func failedEntryToReplace() -> Int? {
        for _ in 0..<entries.count {
            let index = replacementCursor
            replacementCursor = (replacementCursor + 1) % entries.count
            let entry = entries[index]
            if entry.failures > 0 && !entry.connected && !entry.banned { return index }
        }
        return nil
    }

    /// Up to `limit` addresses to connect to now, in the order they were heard of, each marked connected
    /// (tell `disconnected` if the connection fails or ends).
    public mutating func takeCandidates(limit: Int, at now: Instant) -> [Address] {
        guard limit > 0 else { return [] }
        var taken: [Address] = []
        for index in entries.indices {
            guard !entries[index].connected, !entries[index].banned, entries[index].retryAt <= now else {
                continue
            }
            entries[index].connected = true
            taken.append(entries[index].address)
            if taken.count == limit { break }
        }
        return taken
    }

    /// The connection to `address` ended (or never came up): it is tried again after a back-off that
    /// doubles with each failure in a row.
    public mutating func disconnected(_ address: Address, at now: Instant) {
        guard let index = positions[address] else { return }
        entries[index].connected = false
        entries[index].failures += 1
        let doublings = min(entries[index].failures - 1, 30)
        let first = configuration.firstRetryDelay.components.seconds
        let delaySeconds = min(configuration.maximumRetryDelay.components.seconds, first << doublings)
        entries[index].retryAt = now.advanced(by: .seconds(delaySeconds))
    }

    /// `address`, just taken, was not tried after all (no connection could be afforded): it is offered
    /// again, with no failure counted.
    public mutating func untried(_ address: Address) {
        guard let index = positions[address] else { return }
        entries[index].connected = false
    }

    /// `address` sent bad data or broke the protocol: it is never offered again.
    public mutating func ban(_ address: Address) {
        guard let index = positions[address] else { return }
        entries[index].banned = true
    }

    public func isBanned(_ address: Address) -> Bool {
        positions[address].map { entries[$0].banned } ?? false
    }
    public func isConnected(_ address: Address) -> Bool {
        positions[address].map { entries[$0].connected } ?? false
    }
}
