/// The ids of the last changes, in order: what lets a front end that keeps something made from each
/// torrent (the daemon's torrent-get rows) look at the few torrents that changed since it last
/// looked, not at every one of thousands.
///
/// A front end keeps the `mark` it read, and later asks `changedIDs(since:)` for what changed after it.
/// The journal holds at most `capacity` changes: asked about changes older than those, it answers
/// nil, and the front end looks at every torrent. Not thread-safe; its owner's lock guards it.
public struct ChangeJournal<ID: Hashable & Sendable>: Sendable {
    /// Changes counted so far: the mark of the current state.
    public private(set) var mark = 0
    private var entries: [ID] = []
    /// The mark before `entries[0]`: the journal knows every change after it.
    private var firstMark = 0
    public let capacity: Int

    public init(capacity: Int = 4096) {
        precondition(capacity >= 2, "a journal keeps at least two changes")
        self.capacity = capacity
    }

    /// Counts a change of `id`.
    public mutating func record(_ id: ID) {
        mark += 1
        if entries.count == capacity {
            // Half at a time, so that forgetting costs a copy per `capacity / 2` changes.
            entries.removeFirst(capacity / 2)
            firstMark += capacity / 2
        }
        entries.append(id)
    }

    /// The ids changed after `earlier` (a `mark` read before), each once; nil when the journal no
    /// longer holds all of those changes, or `earlier` is not a mark it gave.
    public func changedIDs(since earlier: Int) -> Set<ID>? {
        guard earlier >= firstMark, earlier <= mark else { return nil }
        return Set(entries[(earlier - firstMark)...])
    }
}
