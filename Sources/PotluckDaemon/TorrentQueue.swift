/// Transmission's queue as a value: one order over every torrent (`queuePosition` is the index, 0
/// first, no gaps), the moves clients make in it, and which waiting torrents may start given what runs.
///
/// It only decides; `EngineBackend` keeps each torrent's position in its stored settings and starts
/// or holds torrents in the engine as told.
struct TorrentQueue<ID: Hashable & Sendable>: Sendable, Equatable {
    /// Which queue a torrent is in: downloads and seeds have a limit each.
    enum Direction: Sendable, Hashable {
        case download
        case seed
    }

    /// What a torrent is doing, as far as the queue is concerned.
    enum Standing: Sendable, Hashable {
        /// Started by a client, held until a slot of its direction is free.
        case waiting(Direction)
        /// Running in the engine (checking counts too: it holds its slot). A stalled one, which moved
        /// no data for the session's `queue-stalled-minutes`, takes no slot.
        case running(Direction, stalled: Bool)
        /// Paused, stopped by a seed limit, or failed: neither takes a slot nor waits for one.
        case inactive
    }

    /// How many torrents of each direction may run at once (nil: no limit, the queue is off).
    struct Limits: Sendable, Hashable {
        var downloads: Int?
        var seeds: Int?

        init(downloads: Int?, seeds: Int?) {
            self.downloads = downloads.map { max(0, $0) }
            self.seeds = seeds.map { max(0, $0) }
        }

        func slots(_ direction: Direction) -> Int? {
            switch direction {
            case .download: downloads
            case .seed: seeds
            }
        }
    }

    /// Where a move of the selected torrents takes them.
    enum Move: Sendable, Hashable {
        case top, up, down, bottom
    }

    /// Every torrent, first in the queue first.
    private(set) var order: [ID] = []
    /// The same torrents as a set, so that adding thousands does not search the order for each.
    private var members: Set<ID> = []

    init(order: [ID] = []) {
        var seen = Set<ID>()
        self.order = order.filter { seen.insert($0).inserted }
        members = seen
    }

    func position(of id: ID) -> Int? { members.contains(id) ? order.firstIndex(of: id) : nil }

    /// A new torrent goes last.
    mutating func append(_ id: ID) {
        guard members.insert(id).inserted else { return }
        order.append(id)
    }

    /// Those after them move up: no gap is left. One pass, however many leave.
    mutating func remove(_ ids: Set<ID>) {
        members.subtract(ids)
        order.removeAll { ids.contains($0) }
    }

    /// Puts a torrent at `position` (clamped to the queue), the others keeping their order around it.
    mutating func place(_ id: ID, at position: Int) {
        guard let current = self.position(of: id) else { return }
        order.remove(at: current)
        order.insert(id, at: min(max(0, position), order.count))
    }

    /// Moves the selected torrents. To the top or bottom they go together, keeping their order; up or
    /// down each trades places with the neighbour beyond it, unless that one is selected too, so a
    /// block of selected torrents moves as one instead of overtaking itself.
    mutating func move(_ selected: Set<ID>, _ move: Move) {
        switch move {
        case .top:
            order = order.filter { selected.contains($0) } + order.filter { !selected.contains($0) }
        case .bottom:
            order = order.filter { !selected.contains($0) } + order.filter { selected.contains($0) }
        case .up:
            for index in order.indices.dropFirst()
            where selected.contains(order[index]) && !selected.contains(order[index - 1]) {
                order.swapAt(index, index - 1)
            }
        case .down:
            for index in order.indices.dropLast().reversed()
            where selected.contains(order[index]) && !selected.contains(order[index + 1]) {
                order.swapAt(index, index + 1)
            }
        }
    }

    /// Whether a torrent joining last in the queue may start at once (what `toStart` would say of it):
    /// only while the running (not stalled) and waiting torrents of its direction leave a slot. Looks
    /// no further than it must, so that restoring thousands of torrents does not look at each for each.
    static func admitsNewcomer(
        _ direction: Direction, among others: some Sequence<Standing>, limits: Limits
    ) -> Bool {
        guard let slots = limits.slots(direction) else { return true }
        var taken = 0
        for standing in others {
            guard standing == .waiting(direction) || standing == .running(direction, stalled: false) else {
                continue
            }
            taken += 1
            if taken >= slots { return false }
        }
        return taken < slots
    }

    /// The waiting torrents to start now, first in the queue first: as many of each direction as its
    /// limit leaves free after those running (stalled ones not counted). Running torrents are never
    /// asked to stop, even when a lowered limit leaves more running than it allows.
    func toStart(_ standings: [ID: Standing], limits: Limits) -> [ID] {
        var free: [Direction: Int] = [:]
        for direction in [Direction.download, .seed] {
            guard let slots = limits.slots(direction) else { continue }
            let running = standings.values.filter { $0 == .running(direction, stalled: false) }.count
            free[direction] = max(0, slots - running)
        }
        var starting: [ID] = []
        for id in order {
            guard case .waiting(let direction) = standings[id] else { continue }
            if let left = free[direction] {
                guard left > 0 else { continue }
                free[direction] = left - 1
            }
            starting.append(id)
        }
        return starting
    }
}
