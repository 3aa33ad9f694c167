import TorrentModel

/// How much a piece is wanted: 0 skips it (deselected files), 1–7 order the rest (7 first).
public struct PiecePriority: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// 0 (skip) to 7 (first).
    public let value: UInt8

    /// A priority from 0 to 7 (above 7 is a programmer error: validate user input first).
    public init(_ value: UInt8) {
        precondition(value <= Self.highest.value, "piece priority \(value) is above 7")
        self.value = value
    }

    private init(unchecked value: UInt8) { self.value = value }

    /// Never download (a deselected file).
    public static let skip = PiecePriority(unchecked: 0)
    /// Downloaded after everything else.
    public static let lowest = PiecePriority(unchecked: 1)
    /// The default for every piece.
    public static let normal = PiecePriority(unchecked: 4)
    /// Downloaded before everything else (what a streaming player needs next).
    public static let highest = PiecePriority(unchecked: 7)

    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    public var description: String { "priority \(value)" }
}

/// How many blocks of a piece one peer sent: the evidence for crediting or blaming it after the hash.
public struct PieceContribution: Hashable, Sendable {
    /// The peer that sent the blocks.
    public var peer: PeerSlot
    /// How many blocks of the piece it sent.
    public var blockCount: Int

    /// A contribution of `blockCount` blocks by `peer`.
    public init(peer: PeerSlot, blockCount: Int) {
        self.peer = peer
        self.blockCount = blockCount
    }
}

/// What the hash check of a piece tells about the peers that sent it.
public struct PieceVerdict: Hashable, Sendable {
    /// Who sent the blocks of this attempt, in slot order.
    public var contributions: [PieceContribution] = []
    /// For a piece that passed after failing before: the peers whose blocks in a failed attempt differ
    /// from the verified data, with how many such blocks, in slot order. This is proof, not suspicion; it
    /// needs block digests (see `pieceHashFailed(_:blockDigests:)`).
    public var provenCorrupt: [PieceContribution] = []
    /// For a failed piece: every block came with a digest, so the culprits will be named in
    /// `provenCorrupt` once the piece passes, and the contributors need not be charged on suspicion.
    public var culpritsWillBeIdentified = false
}

/// Where a piece is in its life.
public enum PieceState: UInt8, Sendable {
    /// Not started: none of its blocks are requested or received.
    case missing
    /// Some blocks are requested or received.
    case downloading
    /// Every block is received; the caller is hashing it.
    case awaitingHash
    /// Hashed and good; we have it.
    case verified
}

/// Where a block of a piece is.
public enum BlockState: UInt8, Sendable {
    case open
    case requested
    case received
}

/// What became of a block that arrived.
public enum BlockReceipt: Hashable, Sendable {
    /// New data: write it. `pieceComplete` means every block of its piece is now in and the piece should
    /// be hashed, then reported with `pieceHashPassed` or `pieceHashFailed`.
    case accepted(pieceComplete: Bool)
    /// We already have this block (an endgame duplicate or a late answer): drop it, never write it.
    case duplicate
    /// Not a block we could want (not a standard block, or its piece is not being downloaded): drop it.
    case unexpected
}

/// Chooses which blocks to request: rarest first with a seeded random tie-break, partial pieces first,
/// priorities (0 = skip), an optional strict sequential mode, and endgame duplicates.
///
/// ## Data structures and cost
/// - Missing, wanted pieces live in *buckets* keyed by (priority, availability); a piece's position in its
///   bucket is a uniformly random one (inside-out Fisher–Yates on insertion), which is the tie-break.
///   An availability change moves one piece between two buckets in O(1); a bitmap of non-empty buckets
///   finds the rarest bucket in O(buckets / 64).
/// - Pieces being downloaded with open blocks are kept in a `partials` list, consulted first, so a peer
///   finishes started pieces before opening new ones.
/// - Picking `n` blocks for a peer that has most pieces costs O(partials + n): it visits partial pieces,
///   then walks buckets from the rarest and takes the first pieces the peer has. Only a peer missing most
///   pieces makes the walk skip many; it never touches pieces we have or are not downloading.
/// - Endgame picking walks the pieces in progress from where the previous endgame pick stopped, so
///   successive picks cost about the blocks they take; a peer that can duplicate nothing costs one pass,
///   O(in-progress pieces × blocks per piece). Endgame only covers the last pieces.
/// - Sequential mode scans forward from a cursor below which nothing is pickable.
/// - Runs for a web seed (`PiecePicker+Runs.swift`, which shares the state below within the module) go
///   on from the last block given, and look for the largest gap, one pass over the pieces, only when
///   a run ends.
/// - Per-piece block state lives in pooled records reused across pieces: no allocation per block, and none
///   per piece once the pool has grown to the number of pieces in flight.
///
/// ## Invariants
/// - A piece is in a bucket iff its state is `missing` and its priority is above 0; its bucket is
///   `bucketKey(piece)` and `positionInBucket` locates it.
/// - A piece has a record iff its state is `downloading` or `awaitingHash`.
/// - A piece is in `partials` iff it is `downloading` and has at least one open block.
/// - A block's requesters are empty unless it is `requested`; a `requested` block has 1...max requesters.
/// - `have` holds exactly the `verified` pieces; `wanted` holds the non-verified pieces with priority > 0.
/// - In sequential mode no piece below `sequentialCursor` is pickable or has open blocks.
public struct PiecePicker: Sendable {
    /// Availability above this is treated as equal for ordering: past a thousand copies rarity no longer
    /// matters, and it bounds the bucket table.
    static let availabilityLevels = 1024
    static let priorityLevels = 7
    static let noRecord: Int32 = -1
    static let noSlot = UInt32.max
    /// How many failed attempts at one piece keep their block digests for identifying the culprits.
    static let failedAttemptsRemembered = 8

    /// The torrent's pieces and blocks.
    public let geometry: PieceGeometry
    /// Pieces of which only the first blocks are asked for, the rest being padding, with how many.
    public let dataBlockCounts: [PieceIndex: Int]
    /// The most peers that may have one block requested at the same time (endgame duplicates + 1).
    public let maximumRequestersPerBlock: Int
    /// The verified pieces.
    public private(set) var have: PieceSet
    /// Pieces we still want: not verified and priority above 0.
    public private(set) var wanted: PieceSet
    /// How many peers have every piece (have-all or a full bitfield); counted apart so a seed costs O(1).
    public private(set) var seedCount = 0
    /// Strict index order instead of rarest first (priority 0 pieces are still skipped).
    public private(set) var isSequential = false
    /// How many pieces picking has looked at so far: the work picks cost, as a metric and for tests.
    public private(set) var piecesExamined = 0
    /// At most this many pieces in progress (downloading or awaiting their hash); picking starts no new
    /// piece beyond it. Each such piece holds a piece buffer, so the owner lowers the cap while verified
    /// pieces wait for the disk, instead of receiving blocks it has no memory for.
    public private(set) var maximumPiecesInProgress = Int.max
    /// How many received blocks `discardBlocks(from:)` opened again: they arrive a second time.
    public private(set) var discardedBlockCount = 0
    /// A pick would have started a piece but the cap stopped it.
    private var startHeldBack = false

    private var random: SeededRandom
    var states: [PieceState]
    var priorities: [UInt8]
    private var availabilities: [UInt32]

    /// Made at the first insertion, like `nonEmptyBuckets`: 7,168 empty buckets are 56 KiB (and their
    /// bitmap almost 1 KiB), which a seed (thousands of them in one process) never uses.
    private var buckets: [[UInt32]]
    private var bucketOf: [Int32]
    private var positionInBucket: [Int32]
    private var nonEmptyBuckets: [UInt64]
    /// How many pieces are in buckets (missing and wanted).
    private var bucketedCount = 0

    var records: [DownloadingPiece] = []
    var table: BlockTable
    private var freeRecords: [Int32] = []
    private var recordOf: [Int32]
    private var partials: [UInt32] = []
    private var partialPosition: [Int32]
    private var sequentialCursor = 0
    /// The record where the next endgame pick starts looking.
    private var endgameCursor = 0
    /// Blocks of failed attempts, kept (only when every block had a digest) until the piece passes.
    private var failedAttempts: [UInt32: [FailedBlock]] = [:]

    /// A picker for a torrent of `geometry`, with `have` already verified (resume data) or nothing.
    /// `seed` drives the random tie-break so a run can be replayed. A piece in `dataBlockCounts` is
    /// complete once that many of its first blocks are in: the others are padding, never asked for (the
    /// caller knows them to be zeros).
    public init(
        geometry: PieceGeometry, have: PieceSet? = nil, seed: UInt64, maximumRequestersPerBlock: Int = 3,
        dataBlockCounts: [PieceIndex: Int] = [:]
    ) {
        precondition(maximumRequestersPerBlock >= 1 && maximumRequestersPerBlock <= 255)
        let count = geometry.pieceCount
        precondition(have == nil || have!.pieceCount == count, "have set does not match the geometry")
        precondition(
            dataBlockCounts.allSatisfy {
                $0.key.int < count && (1...geometry.blockCount(of: $0.key)).contains($0.value)
            },
            "a piece's data blocks must be some of its blocks")
        self.geometry = geometry
        self.dataBlockCounts = dataBlockCounts
        self.maximumRequestersPerBlock = maximumRequestersPerBlock
        self.have = have ?? PieceSet(pieceCount: count)
        random = SeededRandom(seed: seed)
        // The first piece is never shorter than another, so its block count bounds them all.
        table = BlockTable(
            blocksPerPiece: count > 0 ? geometry.blockCount(of: PieceIndex(0)) : 0,
            maximumRequesters: maximumRequestersPerBlock)
        wanted = PieceSet(pieceCount: count)
        states = [PieceState](repeating: .missing, count: count)
        priorities = [UInt8](repeating: PiecePriority.normal.value, count: count)
        availabilities = [UInt32](repeating: 0, count: count)
        buckets = []
        nonEmptyBuckets = []
        bucketOf = [Int32](repeating: -1, count: count)
        positionInBucket = [Int32](repeating: -1, count: count)
        recordOf = [Int32](repeating: Self.noRecord, count: count)
        partialPosition = [Int32](repeating: -1, count: count)
        for index in 0..<count {
            let piece = PieceIndex(index)
            if self.have.contains(piece) {
                states[index] = .verified
            } else {
                wanted.insert(piece)
                insertIntoBucket(index)
            }
        }
    }

    // MARK: - Queries

    /// How many pieces the torrent has.
    public var pieceCount: Int { geometry.pieceCount }

    /// Where `piece` is in its life.
    public func state(of piece: PieceIndex) -> PieceState { states[piece.int] }

    /// The priority of `piece` (`.normal` unless set).
    public func priority(of piece: PieceIndex) -> PiecePriority { PiecePriority(priorities[piece.int]) }

    /// How many connected peers have `piece`, seeds included.
    public func availability(of piece: PieceIndex) -> Int { Int(availabilities[piece.int]) + seedCount }

    /// Every wanted piece is verified.
    public var isFinished: Bool { wanted.isEmpty }

    /// Every block still needed is requested or received, so further picks duplicate requests.
    public var isEndgame: Bool { bucketedCount == 0 && partials.isEmpty && !wanted.isEmpty }

    /// How many pieces are downloading or awaiting their hash.
    public var inProgressCount: Int { records.count - freeRecords.count }

    /// The state of one block; blocks of missing pieces are open, of complete pieces received, and so are
    /// padding blocks past a piece's data blocks, which are never asked for.
    public func blockState(of block: BlockRange) -> BlockState {
        guard let (record, blockIndex) = locate(block) else {
            return states[block.piece.int] == .missing ? .open : .received
        }
        return table.states[records[record].base + blockIndex]
    }

    /// Whether the bytes of `block` may go into its piece's buffer: the piece is being downloaded (not
    /// missing: `blockReceived` refuses a block of a piece nobody fetches, so a buffer taken for it would
    /// be held for nothing), and the block has not arrived yet.
    public func acceptsData(for block: BlockRange) -> Bool {
        states[block.piece.int] == .downloading && blockState(of: block) != .received
    }

    /// The peers a block is currently requested from.
    public func requesters(of block: BlockRange) -> [PeerSlot] {
        guard let (record, blockIndex) = locate(block) else { return [] }
        return table.requesters(records[record].base + blockIndex).map { PeerSlot($0) }
    }

    /// Whether a peer with pieces `peerHas` has something we want (to decide our interest); O(pieces/64).
    public func wantsAnything(from peerHas: PieceSet) -> Bool { wanted.intersects(peerHas) }

    // MARK: - Availability

    /// A peer announced all of `pieces` (its bitfield).
    public mutating func addAvailability(_ pieces: PieceSet) {
        pieces.forEach { incrementAvailability($0) }
    }

    /// A peer holding `pieces` left.
    public mutating func removeAvailability(_ pieces: PieceSet) {
        pieces.forEach { decrementAvailability($0) }
    }

    /// A peer announced one piece (HAVE).
    public mutating func incrementAvailability(_ piece: PieceIndex) {
        availabilities[piece.int] += 1
        if availabilities[piece.int] < Self.availabilityLevels { moveToCurrentBucket(piece.int) }
    }

    /// One peer fewer has `piece` (it left, or its bitfield is replaced).
    public mutating func decrementAvailability(_ piece: PieceIndex) {
        precondition(availabilities[piece.int] > 0, "availability of \(piece) would go negative")
        availabilities[piece.int] -= 1
        if availabilities[piece.int] < Self.availabilityLevels - 1 { moveToCurrentBucket(piece.int) }
    }

    /// A seed (have-all or full bitfield) joined: raises every piece equally, so ordering is unchanged.
    public mutating func addSeed() { seedCount += 1 }

    /// A seed left.
    public mutating func removeSeed() {
        precondition(seedCount > 0, "no seed to remove")
        seedCount -= 1
    }

    // MARK: - Settings

    /// Sets a piece's priority; `.skip` takes a missing piece out of picking. A piece already downloading
    /// is finished regardless, since its data is already in flight.
    public mutating func setPriority(_ priority: PiecePriority, of piece: PieceIndex) {
        let index = piece.int
        guard priorities[index] != priority.value else { return }
        if bucketOf[index] >= 0 { removeFromBucket(index) }
        priorities[index] = priority.value
        if states[index] != .verified {
            if priority.value > 0 { wanted.insert(piece) } else { wanted.remove(piece) }
        }
        if states[index] == .missing && priority.value > 0 {
            insertIntoBucket(index)
            sequentialCursor = min(sequentialCursor, index)
        }
    }

    /// Sets ``maximumPiecesInProgress``. True when a pick was held back by the old cap and the new one
    /// leaves room: the caller should pick again for its peers.
    public mutating func setMaximumPiecesInProgress(_ limit: Int) -> Bool {
        precondition(limit >= 0, "a negative cap on pieces in progress")
        maximumPiecesInProgress = limit
        guard startHeldBack && inProgressCount < limit else { return false }
        startHeldBack = false
        return true
    }

    /// Whether another piece may start now; remembers a refusal for ``setMaximumPiecesInProgress(_:)``.
    mutating func mayStartPiece() -> Bool {
        guard inProgressCount < maximumPiecesInProgress else {
            startHeldBack = true
            return false
        }
        return true
    }

    /// Switches strict sequential order on or off.
    public mutating func setSequential(_ sequential: Bool) {
        isSequential = sequential
        sequentialCursor = 0
    }

    // MARK: - Picking

    /// Appends up to `maximumCount` blocks for `peer` (which has `peerHas`) to `blocks` and marks them
    /// requested by it. Returns how many were appended. Outside endgame a block is given to one peer only;
    /// in endgame, blocks already requested from others are duplicated up to `maximumRequestersPerBlock`.
    /// `peerHas` must already be counted in availability (as `RequestPipeline` does): pieces no peer is
    /// counted for are not looked at unless a seed is connected.
    @discardableResult
    public mutating func pickBlocks(
        for peer: PeerSlot, peerHas: PieceSet, maximumCount: Int, into blocks: inout [BlockRange]
    ) -> Int {
        precondition(peerHas.pieceCount == pieceCount, "peer's piece set does not match the geometry")
        guard maximumCount > 0, !peerHas.isEmpty else { return 0 }
        var remaining = maximumCount
        if isSequential {
            pickSequential(peer, peerHas, &remaining, &blocks)
        } else {
            pickFromPartials(peer, peerHas, &remaining, &blocks)
            if remaining > 0 { pickFromBuckets(peer, peerHas, &remaining, &blocks) }
        }
        if remaining > 0 && isEndgame { pickEndgame(peer, peerHas, &remaining, &blocks) }
        return maximumCount - remaining
    }

    private mutating func pickFromPartials(
        _ peer: PeerSlot, _ peerHas: PieceSet, _ remaining: inout Int, _ blocks: inout [BlockRange]
    ) {
        var i = 0
        while i < partials.count && remaining > 0 {
            let piece = partials[i]
            piecesExamined += 1
            if peerHas.contains(PieceIndex(piece)) {
                let taken = takeOpenBlocks(Int(recordOf[Int(piece)]), peer, remaining, &blocks)
                remaining -= taken
            }
            // Taking the last open block swap-removes the piece, bringing another one to `i`.
            if i < partials.count && partials[i] == piece { i += 1 }
        }
    }

    private mutating func pickFromBuckets(
        _ peer: PeerSlot, _ peerHas: PieceSet, _ remaining: inout Int, _ blocks: inout [BlockRange]
    ) {
        var key = nextNonEmptyBucket(atOrAfter: 0)
        while let current = key, remaining > 0 {
            // Pieces no connected peer has cannot be taken from a non-seed; skip their bucket.
            if seedCount > 0 || current % Self.availabilityLevels != 0 {
                var j = 0
                while j < buckets[current].count && remaining > 0 {
                    let piece = Int(buckets[current][j])
                    piecesExamined += 1
                    if peerHas.contains(PieceIndex(piece)) {
                        guard mayStartPiece() else { return }
                        let record = startDownloading(piece)  // swap-removes: `j` now holds another piece
                        let taken = takeOpenBlocks(record, peer, remaining, &blocks)
                        remaining -= taken
                    } else {
                        j += 1
                    }
                }
            }
            key = nextNonEmptyBucket(atOrAfter: current + 1)
        }
    }

    private mutating func pickSequential(
        _ peer: PeerSlot, _ peerHas: PieceSet, _ remaining: inout Int, _ blocks: inout [BlockRange]
    ) {
        while sequentialCursor < pieceCount && !isPickableOrOpen(sequentialCursor) { sequentialCursor += 1 }
        var index = sequentialCursor
        while index < pieceCount && remaining > 0 {
            piecesExamined += 1
            if isPickableOrOpen(index) && peerHas.contains(PieceIndex(index)) {
                if states[index] == .missing && !mayStartPiece() {
                    // Capped: what is left goes to pieces already started, wherever they are.
                    pickFromPartials(peer, peerHas, &remaining, &blocks)
                    return
                }
                let record = states[index] == .missing ? startDownloading(index) : Int(recordOf[index])
                let taken = takeOpenBlocks(record, peer, remaining, &blocks)
                remaining -= taken
            }
            index += 1
        }
    }

    private func isPickableOrOpen(_ index: Int) -> Bool {
        switch states[index] {
        case .missing: priorities[index] > 0
        case .downloading: partialPosition[index] >= 0
        case .awaitingHash, .verified: false
        }
    }

    private mutating func pickEndgame(
        _ peer: PeerSlot, _ peerHas: PieceSet, _ remaining: inout Int, _ blocks: inout [BlockRange]
    ) {
        // Blocks with the fewest requesters first, so a duplicate goes where it helps most. Each pass resumes
        // where the last pick stopped, so successive picks walk the pieces in turn instead of rescanning
        // blocks already duplicated; a level with no blocks is skipped without a scan.
        let recordCount = records.count
        guard recordCount > 0 else { return }
        for level in 1..<maximumRequestersPerBlock
        where remaining > 0 && table.blockCount(withRequesters: level) > 0 {
            var visited = 0
            var r = endgameCursor % recordCount
            while visited < recordCount && remaining > 0 {
                let record = records[r]
                let piece = PieceIndex(record.piece)
                if record.isActive && states[piece.int] == .downloading && peerHas.contains(piece) {
                    for b in 0..<record.blockCount where remaining > 0 {
                        let i = record.base + b
                        // The arrays are read directly: this is the one loop that scans many blocks per pick.
                        guard table.requesterCounts[i] == level, !table.isRequested(i, by: peer.value) else {
                            continue
                        }
                        table.addRequester(peer.value, to: i)
                        blocks.append(geometry.block(b, of: piece))
                        remaining -= 1
                    }
                }
                if remaining > 0 {
                    r = (r + 1) % recordCount
                    visited += 1
                }
            }
            endgameCursor = r
        }
    }

    /// Marks up to `limit` open blocks of a record requested by `peer`; returns how many.
    mutating func takeOpenBlocks(
        _ record: Int, _ peer: PeerSlot, _ limit: Int, _ blocks: inout [BlockRange]
    ) -> Int {
        let piece = PieceIndex(records[record].piece)
        var taken = 0
        var b = records[record].firstOpenHint
        let blockCount = records[record].blockCount
        while b < blockCount && taken < limit {
            if table.states[records[record].base + b] == .open {
                table.states[records[record].base + b] = .requested
                table.addRequester(peer.value, to: records[record].base + b)
                records[record].openCount -= 1
                blocks.append(geometry.block(b, of: piece))
                taken += 1
            }
            b += 1
        }
        // Every block in [hint, b) is now requested or received.
        records[record].firstOpenHint = b
        if records[record].openCount == 0 { removeFromPartials(piece.int) }
        return taken
    }

    // MARK: - Request and block events

    /// `peer` will not answer its request for `block` (it choked us, left, was snubbed, or we cancelled):
    /// the block is open again once no other peer has it requested. Ignores blocks not requested by `peer`.
    public mutating func releaseRequest(_ block: BlockRange, from peer: PeerSlot) {
        guard let (record, b) = locate(block), table.states[records[record].base + b] == .requested,
            table.removeRequester(peer.value, from: records[record].base + b)
        else { return }
        if table.requesterCount(records[record].base + b) == 0 {
            table.states[records[record].base + b] = .open
            records[record].openCount += 1
            records[record].firstOpenHint = min(records[record].firstOpenHint, b)
            if records[record].openCount == 1 { insertIntoPartials(block.piece.int) }
            sequentialCursor = min(sequentialCursor, block.piece.int)
        }
    }

    /// A block arrived from `peer`. Appends the other peers that had it requested (they should be sent
    /// cancels) to `cancelTo`. A block is accepted at most once.
    public mutating func blockReceived(
        _ block: BlockRange, from peer: PeerSlot, cancelTo: inout [PeerSlot]
    ) -> BlockReceipt {
        guard geometry.isStandardBlock(block) else { return .unexpected }
        switch states[block.piece.int] {
        case .missing: return .unexpected
        case .awaitingHash, .verified: return .duplicate
        case .downloading: break
        }
        let record = Int(recordOf[block.piece.int])
        let b = geometry.standardBlockIndex(of: block)
        guard b < records[record].blockCount else { return .unexpected }
        switch table.states[records[record].base + b] {
        case .received:
            return .duplicate
        case .open:
            // A late answer to a request we had released: the data is still good.
            records[record].openCount -= 1
            if records[record].openCount == 0 { removeFromPartials(block.piece.int) }
        case .requested:
            for requester in table.requesters(records[record].base + b) where requester != peer.value {
                cancelTo.append(PeerSlot(requester))
            }
            table.clearRequesters(records[record].base + b)
        }
        table.states[records[record].base + b] = .received
        table.senders[records[record].base + b] = peer.value
        records[record].receivedCount += 1
        if records[record].receivedCount == records[record].blockCount {
            states[block.piece.int] = .awaitingHash
            return .accepted(pieceComplete: true)
        }
        return .accepted(pieceComplete: false)
    }

    /// Whether a piece failed before with block digests: its `pieceHashPassed` should then get the
    /// digests of the good data, to name who sent the corrupt blocks.
    public func hasFailedAttempts(_ piece: PieceIndex) -> Bool { failedAttempts[UInt32(piece.int)] != nil }

    /// Who sent the blocks of a piece being downloaded or awaiting its hash, in slot order.
    public func contributions(to piece: PieceIndex) -> [PieceContribution] {
        let record = recordOf[piece.int]
        guard record != Self.noRecord else { return [] }
        return table.contributors(
            base: records[Int(record)].base, blockCount: records[Int(record)].blockCount)
    }

    /// The piece hashed correctly: we have it. Names who sent it and, if it failed before with block
    /// digests, who sent the corrupt blocks then: those whose digests differ from `blockDigests`, the
    /// digests of this good data (one per block of the piece, computed as for the failure).
    @discardableResult
    public mutating func pieceHashPassed(_ piece: PieceIndex, blockDigests: [UInt64]? = nil) -> PieceVerdict {
        precondition(states[piece.int] == .awaitingHash, "\(piece) is not awaiting its hash")
        let record = Int(recordOf[piece.int])
        var verdict = PieceVerdict(
            contributions: table.contributors(
                base: records[record].base, blockCount: records[record].blockCount))
        if let failedBlocks = failedAttempts.removeValue(forKey: UInt32(piece.int)), let blockDigests,
            blockDigests.count >= records[record].blockCount
        {
            for failed in failedBlocks where blockDigests[failed.block] != failed.digest {
                if let i = verdict.provenCorrupt.firstIndex(where: { $0.peer.value == failed.sender }) {
                    verdict.provenCorrupt[i].blockCount += 1
                } else {
                    verdict.provenCorrupt.append(
                        PieceContribution(peer: PeerSlot(failed.sender), blockCount: 1))
                }
            }
            verdict.provenCorrupt.sort { $0.peer < $1.peer }
        }
        freeRecord(of: piece.int)
        states[piece.int] = .verified
        have.insert(piece)
        wanted.remove(piece)
        return verdict
    }

    /// The piece failed its hash: it is missing again. Names who sent its blocks, for the caller to charge
    /// them, unless digests will identify the culprits later: `blockDigests`, one cheap checksum per block
    /// of the failed data (a truncated hash), is kept with who sent each block; once the piece passes, the
    /// blocks that differ from the good data name the peers that sent corrupt data (libtorrent's "smart
    /// ban"). Computing them only when a piece fails keeps them off the data path.
    @discardableResult
    public mutating func pieceHashFailed(_ piece: PieceIndex, blockDigests: [UInt64]? = nil) -> PieceVerdict {
        precondition(states[piece.int] == .awaitingHash, "\(piece) is not awaiting its hash")
        let record = Int(recordOf[piece.int])
        var verdict = PieceVerdict(
            contributions: table.contributors(
                base: records[record].base, blockCount: records[record].blockCount))
        let blockCount = records[record].blockCount
        if let blockDigests, blockDigests.count >= blockCount {
            verdict.culpritsWillBeIdentified = true
            var evidence = failedAttempts[UInt32(piece.int), default: []]
            for b in 0..<blockCount where table.senders[records[record].base + b] != Self.noSlot {
                evidence.append(
                    FailedBlock(
                        block: b, sender: table.senders[records[record].base + b], digest: blockDigests[b]))
            }
            // Remember a bounded number of attempts: liars could otherwise grow this by failing one piece
            // again and again before anyone delivers it intact.
            let limit = Self.failedAttemptsRemembered * blockCount
            if evidence.count > limit { evidence.removeFirst(evidence.count - limit) }
            failedAttempts[UInt32(piece.int)] = evidence
        }
        freeRecord(of: piece.int)
        states[piece.int] = .missing
        if priorities[piece.int] > 0 { insertIntoBucket(piece.int) }
        sequentialCursor = min(sequentialCursor, piece.int)
        return verdict
    }

    /// Opens again every block `peer` sent of the pieces still being downloaded (not those awaiting
    /// their hash): a peer under suspicion must not complete pieces with data nobody has checked. Returns
    /// how many blocks were reopened.
    @discardableResult
    public mutating func discardBlocks(from peer: PeerSlot) -> Int {
        var reopened = 0
        for r in records.indices where records[r].isActive {
            let piece = Int(records[r].piece)
            guard states[piece] == .downloading else { continue }
            for b in 0..<records[r].blockCount
            where table.states[records[r].base + b] == .received
                && table.senders[records[r].base + b] == peer.value
            {
                table.states[records[r].base + b] = .open
                table.senders[records[r].base + b] = Self.noSlot
                records[r].receivedCount -= 1
                records[r].openCount += 1
                records[r].firstOpenHint = min(records[r].firstOpenHint, b)
                if records[r].openCount == 1 { insertIntoPartials(piece) }
                sequentialCursor = min(sequentialCursor, piece)
                reopened += 1
            }
        }
        discardedBlockCount += reopened
        return reopened
    }

    /// A peer left and its slot may be reused: blocks it sent stay received, but are no longer credited
    /// or blamed to whoever takes the slot next. O(pieces in flight × blocks per piece); not per block.
    public mutating func forgetSender(_ peer: PeerSlot) {
        for r in records.indices where records[r].isActive {
            for b in 0..<records[r].blockCount where table.senders[records[r].base + b] == peer.value {
                table.senders[records[r].base + b] = Self.noSlot
            }
        }
        for piece in Array(failedAttempts.keys) {
            failedAttempts[piece]!.removeAll { $0.sender == peer.value }
        }
    }

    /// Marks a missing piece verified without downloading it (checked on disk at start-up).
    public mutating func markVerified(_ piece: PieceIndex) {
        precondition(states[piece.int] == .missing, "only a missing piece can be marked verified")
        if bucketOf[piece.int] >= 0 { removeFromBucket(piece.int) }
        states[piece.int] = .verified
        have.insert(piece)
        wanted.remove(piece)
    }

    // MARK: - Internals

    func locate(_ block: BlockRange) -> (record: Int, block: Int)? {
        guard geometry.isStandardBlock(block) else { return nil }
        let record = recordOf[block.piece.int]
        guard record != Self.noRecord else { return nil }
        let b = geometry.standardBlockIndex(of: block)
        guard b < records[Int(record)].blockCount else { return nil }
        return (Int(record), b)
    }

    private func bucketKey(_ index: Int) -> Int {
        let priorityRank = Self.priorityLevels - Int(priorities[index])
        let availability = min(Int(availabilities[index]), Self.availabilityLevels - 1)
        return priorityRank * Self.availabilityLevels + availability
    }

    private mutating func insertIntoBucket(_ index: Int) {
        let key = bucketKey(index)
        if buckets.isEmpty {
            let bucketCount = Self.priorityLevels * Self.availabilityLevels
            buckets = [[UInt32]](repeating: [], count: bucketCount)
            nonEmptyBuckets = [UInt64](repeating: 0, count: (bucketCount + 63) / 64)
        }
        buckets[key].append(UInt32(index))
        let last = buckets[key].count - 1
        // Inside-out Fisher–Yates: a uniformly random place keeps each bucket a random permutation.
        let other = random.below(last + 1)
        if other != last {
            let moved = buckets[key][other]
            buckets[key][last] = moved
            positionInBucket[Int(moved)] = Int32(last)
            buckets[key][other] = UInt32(index)
        }
        positionInBucket[index] = Int32(other)
        bucketOf[index] = Int32(key)
        nonEmptyBuckets[key >> 6] |= 1 << UInt64(key & 63)
        bucketedCount += 1
    }

    private mutating func removeFromBucket(_ index: Int) {
        let key = Int(bucketOf[index])
        let position = Int(positionInBucket[index])
        let last = buckets[key].removeLast()
        if last != UInt32(index) {
            buckets[key][position] = last
            positionInBucket[Int(last)] = Int32(position)
        }
        if buckets[key].isEmpty { nonEmptyBuckets[key >> 6] &= ~(1 << UInt64(key & 63)) }
        bucketOf[index] = -1
        positionInBucket[index] = -1
        bucketedCount -= 1
    }

    private mutating func moveToCurrentBucket(_ index: Int) {
        guard bucketOf[index] >= 0, Int(bucketOf[index]) != bucketKey(index) else { return }
        removeFromBucket(index)
        insertIntoBucket(index)
    }

    func nextNonEmptyBucket(atOrAfter key: Int) -> Int? {
        var word = key >> 6
        guard word < nonEmptyBuckets.count else { return nil }
        var bits = nonEmptyBuckets[word] & (~0 << UInt64(key & 63))
        while bits == 0 {
            word += 1
            guard word < nonEmptyBuckets.count else { return nil }
            bits = nonEmptyBuckets[word]
        }
        return word * 64 + bits.trailingZeroBitCount
    }

    private mutating func insertIntoPartials(_ index: Int) {
        partialPosition[index] = Int32(partials.count)
        partials.append(UInt32(index))
    }

    private mutating func removeFromPartials(_ index: Int) {
        let position = Int(partialPosition[index])
        let last = partials.removeLast()
        if last != UInt32(index) {
            partials[position] = last
            partialPosition[Int(last)] = Int32(position)
        }
        partialPosition[index] = -1
    }

    /// Moves a missing piece to `downloading` with a fresh record; returns the record.
    mutating func startDownloading(_ index: Int) -> Int {
        precondition(states[index] == .missing)
        if bucketOf[index] >= 0 { removeFromBucket(index) }
        let blockCount = dataBlockCounts[PieceIndex(index)] ?? geometry.blockCount(of: PieceIndex(index))
        let record: Int
        if let free = freeRecords.popLast() {
            record = Int(free)
            records[record].reset(piece: UInt32(index), blockCount: blockCount)
            table.reset(base: records[record].base, blockCount: blockCount)
        } else {
            record = records.count
            var fresh = DownloadingPiece(base: table.grow())
            fresh.reset(piece: UInt32(index), blockCount: blockCount)
            table.reset(base: fresh.base, blockCount: blockCount)
            records.append(fresh)
        }
        recordOf[index] = Int32(record)
        states[index] = .downloading
        insertIntoPartials(index)
        return record
    }

    private mutating func freeRecord(of index: Int) {
        let record = recordOf[index]
        if partialPosition[index] >= 0 { removeFromPartials(index) }
        records[Int(record)].isActive = false
        freeRecords.append(record)
        recordOf[index] = Self.noRecord
    }
}

/// A block from a failed attempt at a piece: who sent it and the digest of what they sent.
struct FailedBlock: Hashable, Sendable {
    var block: Int
    var sender: UInt32
    var digest: UInt64
}

/// The bookkeeping of one piece in flight; pooled and reused by `PiecePicker`. Its blocks live in the
/// picker's `BlockTable` from `base` on, so this stays a few scalars that copy for free.
///
/// Invariants (for blocks `base..<base + blockCount`): `openCount` counts `.open` blocks and
/// `receivedCount` `.received` ones; no block before `firstOpenHint` is open.
struct DownloadingPiece: Sendable {
    let base: Int
    var piece: UInt32 = 0
    var blockCount = 0
    var isActive = false
    var openCount = 0
    var receivedCount = 0
    var firstOpenHint = 0

    init(base: Int) { self.base = base }

    mutating func reset(piece: UInt32, blockCount: Int) {
        self.piece = piece
        self.blockCount = blockCount
        isActive = true
        openCount = blockCount
        receivedCount = 0
        firstOpenHint = 0
    }
}

extension PieceGeometry {
    /// The index of a block that `isStandardBlock` accepted: the inverse of `block(_:of:)`.
    /// (A candidate for TorrentModel, the home of piece and block arithmetic.)
    func standardBlockIndex(of block: BlockRange) -> Int { Int(block.offset / blockLength) }
}
