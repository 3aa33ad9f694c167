import TorrentModel

/// Per-block state of every piece in flight, in flat arrays (one run of `blocksPerPiece` entries per
/// `DownloadingPiece`) so the hot path touches contiguous memory and never allocates once grown.
///
/// Invariants: every array holds `blocksPerPiece` entries per run (`requesterSlots` that times
/// `maximumRequesters`); `requesterCounts[i] > 0` iff block `i` is `.requested`; `senders[i]` is
/// meaningful only for received blocks.
struct BlockTable: Sendable {
    let blocksPerPiece: Int
    let maximumRequesters: Int
    var states: [BlockState] = []
    var senders: [UInt32] = []
    private(set) var requesterSlots: [UInt32] = []
    private(set) var requesterCounts: [UInt8] = []
    /// `blocksByRequesterCount[n]` is how many blocks have exactly `n` requesters (for n > 0).
    private var blocksByRequesterCount: [Int]

    init(blocksPerPiece: Int, maximumRequesters: Int) {
        self.blocksPerPiece = blocksPerPiece
        self.maximumRequesters = maximumRequesters
        blocksByRequesterCount = [Int](repeating: 0, count: maximumRequesters + 1)
    }

    func blockCount(withRequesters count: Int) -> Int { blocksByRequesterCount[count] }

    private mutating func setRequesterCount(_ block: Int, _ count: Int) {
        blocksByRequesterCount[Int(requesterCounts[block])] -= 1
        requesterCounts[block] = UInt8(count)
        blocksByRequesterCount[count] += 1
    }

    /// Adds one run of blocks; returns its base index.
    mutating func grow() -> Int {
        let base = states.count
        states.append(contentsOf: repeatElement(.open, count: blocksPerPiece))
        senders.append(contentsOf: repeatElement(PiecePicker.noSlot, count: blocksPerPiece))
        requesterSlots.append(
            contentsOf: repeatElement(PiecePicker.noSlot, count: blocksPerPiece * maximumRequesters))
        requesterCounts.append(contentsOf: repeatElement(0, count: blocksPerPiece))
        blocksByRequesterCount[0] += blocksPerPiece
        return base
    }

    mutating func reset(base: Int, blockCount: Int) {
        precondition(blockCount <= blocksPerPiece)
        for i in base..<base + blockCount {
            states[i] = .open
            senders[i] = PiecePicker.noSlot
            setRequesterCount(i, 0)
        }
    }

    func requesterCount(_ block: Int) -> Int { Int(requesterCounts[block]) }

    func requesters(_ block: Int) -> ArraySlice<UInt32> {
        let start = block * maximumRequesters
        return requesterSlots[start..<start + Int(requesterCounts[block])]
    }

    func isRequested(_ block: Int, by peer: UInt32) -> Bool {
        let start = block * maximumRequesters
        for i in start..<start + Int(requesterCounts[block]) where requesterSlots[i] == peer { return true }
        return false
    }

    mutating func addRequester(_ peer: UInt32, to block: Int) {
        let count = Int(requesterCounts[block])
        precondition(count < maximumRequesters, "too many requesters for one block")
        requesterSlots[block * maximumRequesters + count] = peer
        setRequesterCount(block, count + 1)
    }

    /// Returns whether `peer` was a requester.
    mutating func removeRequester(_ peer: UInt32, from block: Int) -> Bool {
        let start = block * maximumRequesters
        let count = Int(requesterCounts[block])
        for i in start..<start + count where requesterSlots[i] == peer {
            requesterSlots[i] = requesterSlots[start + count - 1]
            setRequesterCount(block, count - 1)
            return true
        }
        return false
    }

    mutating func clearRequesters(_ block: Int) { setRequesterCount(block, 0) }

    /// The peers that sent received blocks and how many each, in slot order. Allocates: once per piece.
    func contributors(base: Int, blockCount: Int) -> [PieceContribution] {
        var contributions: [PieceContribution] = []
        for i in base..<base + blockCount where senders[i] != PiecePicker.noSlot {
            if let j = contributions.firstIndex(where: { $0.peer.value == senders[i] }) {
                contributions[j].blockCount += 1
            } else {
                contributions.append(PieceContribution(peer: PeerSlot(senders[i]), blockCount: 1))
            }
        }
        return contributions.sorted { $0.peer < $1.peer }
    }
}
