import TorrentModel

@testable import Swarm

/// A deterministic discrete-event simulation of one downloader, driven by `RequestPipeline`, against many
/// simulated peers with their own bandwidth and latency, joining, leaving and choking, some of them
/// sending corrupt blocks. Everything random comes from one seed, so a run replays exactly.
///
/// Each peer serves our requests in order over its own link: a request reaches it after its one-way
/// latency, waits for the link, takes `length / bandwidth` to send and arrives one latency later. A choke
/// or departure discards everything the peer had queued (BEP 3), and a cancel that reaches the peer before
/// it starts sending a block suppresses that block.
struct SwarmSimulation {
    struct Parameters {
        var seed: UInt64
        var peerCount = 100
        /// Peers with every piece, never leaving: they guarantee every piece stays available.
        var seedCount = 3
        /// Peers that corrupt a share of the blocks they send.
        var liarCount = 4
        var liarCorruptionProbability = 0.5
        var pieceCount = 300
        var pieceLength = 256 * 1024
        /// Peers leave and come back, and choke and unchoke us now and then.
        var churn = true
        var sequential = false
        /// 1 turns endgame duplicates off.
        var maximumRequestersPerBlock = 3
        /// Report a digest with every block, so a liar is identified rather than suspected.
        var blockDigests = true
        var timeLimitSeconds = 7200.0
        /// The engine's piece buffers: a cap on pieces in progress (nil: none).
        var maximumPiecesInProgress: Int?
        /// `RequestPipeline.Configuration.probationPieces` (0: off).
        var probationPieces = RequestPipeline.Configuration().probationPieces
        /// `RequestPipeline.Configuration.maximumPiecesAwaitingHash` (0: off).
        var maximumPiecesAwaitingHash = RequestPipeline.Configuration().maximumPiecesAwaitingHash
        /// How long a complete piece waits for its hash check; 0 checks it the moment it completes. The
        /// engine's checks run off the reactor, and a peer's queue keeps flowing meanwhile.
        var hashSeconds = 0.0
    }

    struct Result {
        var finished = false
        var completionSeconds = 0.0
        /// From the first moment every needed block was requested to completion.
        var endgameSeconds = 0.0
        /// Mean download rates before and during endgame, in accepted payload bytes per second.
        var rateBeforeEndgameBytesPerSecond = 0.0
        var endgameRateBytesPerSecond = 0.0
        /// The longest time without an accepted block once data started flowing.
        var longestGapSeconds = 0.0
        var blocksAcceptedTwice = 0
        var duplicatesRejected = 0
        var cancelsSent = 0
        var hashFailures = 0
        /// Churn that happened: peers leaving (they come back later) and peers choking us.
        var departures = 0
        var chokes = 0
        var bannedLiars: Set<PeerSlot> = []
        var bannedHonestPeers: Set<PeerSlot> = []
        var liars: Set<PeerSlot> = []
        /// The pieces in the order they were first requested.
        var requestOrder: [Int] = []
        /// For each piece in the order it was first requested, how many non-seed peers have it.
        var availabilityInRequestOrder: [Int] = []
        /// The piece indices in the order they were verified.
        var verificationOrder: [Int] = []
        /// The most pieces that were in progress at once.
        var mostPiecesInProgress = 0
        /// A digest of every event, to show that a seed replays exactly.
        var fingerprint: UInt64 = 0xcbf2_9ce4_8422_2325
    }

    private struct Peer {
        var slot: PeerSlot
        var bandwidthBytesPerSecond: Double
        var latencySeconds: Double
        var has: PieceSet
        var isSeed: Bool
        var isLiar: Bool
        var isConnected = false
        var isBanned = false
        var linkFreeAt = 0.0
        /// Bumped on choke, departure and ban; deliveries from an older epoch were discarded by the peer.
        var epoch = 0
        /// Bumped on every join, so a departure planned for an earlier connection does not end this one.
        var connection = 0
        /// Blocks cancelled, with the time each cancel reaches the peer.
        var cancelArrivals: [BlockRange: Double] = [:]
    }

    private enum Event {
        case join(Int)
        case leave(Int, connection: Int)
        case unchoke(Int, epoch: Int)
        case choke(Int, epoch: Int)
        case deliver(Int, BlockRange, epoch: Int, sendStart: Double, corrupt: Bool)
        case hashed(PieceIndex)
        case tick
    }

    private let parameters: Parameters
    private var random: SeededRandom
    private var pipeline: RequestPipeline
    private var peers: [Peer] = []
    private var queue = EventQueue<Event>()
    private var now = 0.0
    private var actions: [RequestAction] = []
    private var result = Result()
    /// Accepted blocks whose bytes were corrupt (until an honest copy replaces them).
    private var corruptBlocks: Set<BlockRange> = []
    /// Accepted blocks of the pieces not yet verified or failed.
    private var acceptedBlocks: Set<BlockRange> = []
    /// Blocks accepted again while their piece was still open: allowed only for blocks the picker
    /// discarded (a suspect's, fetched again).
    private var reacceptedBlocks = 0
    private var requestedPieces: Set<PieceIndex> = []
    private var nonSeedAvailability: [Int]
    private var lastAcceptedAt: Double?
    private var endgameStartedAt: Double?
    private var firstAcceptedAt: Double?
    private var bytesAccepted = 0
    private var bytesAcceptedBeforeEndgame = 0

    init(_ parameters: Parameters) {
        self.parameters = parameters
        random = SeededRandom(seed: parameters.seed)
        let geometry = PieceGeometry(
            totalLength: Int64(parameters.pieceCount) * Int64(parameters.pieceLength) - 1000,
            pieceLength: parameters.pieceLength)
        var configuration = RequestPipeline.Configuration()
        configuration.maximumRequestersPerBlock = parameters.maximumRequestersPerBlock
        configuration.probationPieces = parameters.probationPieces
        configuration.maximumPiecesAwaitingHash = parameters.maximumPiecesAwaitingHash
        pipeline = RequestPipeline(
            geometry: geometry, seed: parameters.seed &+ 1, configuration: configuration)
        pipeline.setSequential(parameters.sequential)
        if let cap = parameters.maximumPiecesInProgress {
            var none: [RequestAction] = []
            pipeline.limitPiecesInProgress(to: cap, at: Instant(nanoseconds: 0), into: &none)
        }
        nonSeedAvailability = [Int](repeating: 0, count: geometry.pieceCount)
        // Each piece has a popularity, so availability varies and rarest-first has something to do.
        let popularity = (0..<geometry.pieceCount).map { _ in 0.05 + 0.75 * unit() }
        for index in 0..<parameters.peerCount {
            let isSeed = index < parameters.seedCount
            let isLiar = !isSeed && index < parameters.seedCount + parameters.liarCount
            var has = PieceSet(pieceCount: geometry.pieceCount, full: isSeed)
            if !isSeed {
                for piece in 0..<geometry.pieceCount where unit() < popularity[piece] {
                    has.insert(PieceIndex(piece))
                    nonSeedAvailability[piece] += 1
                }
            }
            // Log-uniform 10 KB/s to 1 MB/s: real swarms are dominated by a few fast peers. Liars are
            // given enough bandwidth to send many blocks, so catching them is a fair expectation.
            let bandwidth = isLiar ? 200_000 + 300_000 * unit() : 10_000 * pow100(unit())
            peers.append(
                Peer(
                    slot: PeerSlot(UInt32(index)), bandwidthBytesPerSecond: bandwidth,
                    latencySeconds: 0.01 + 0.29 * unit(), has: has, isSeed: isSeed, isLiar: isLiar))
            if isLiar { result.liars.insert(PeerSlot(UInt32(index))) }
            schedule(.join(index), after: 5 * unit())
        }
        schedule(.tick, after: 1)
    }

    /// Runs to completion or the time limit.
    mutating func run() -> Result {
        while let (time, event) = queue.pop(), time <= parameters.timeLimitSeconds {
            now = time
            handle(event)
            if pipeline.picker.isFinished {
                result.finished = true
                result.completionSeconds = now
                result.endgameSeconds = endgameStartedAt.map { now - $0 } ?? 0
                if let endgameStartedAt, let firstAcceptedAt {
                    result.rateBeforeEndgameBytesPerSecond =
                        Double(bytesAcceptedBeforeEndgame) / (endgameStartedAt - firstAcceptedAt)
                    result.endgameRateBytesPerSecond =
                        Double(bytesAccepted - bytesAcceptedBeforeEndgame) / (now - endgameStartedAt)
                }
                break
            }
        }
        result.blocksAcceptedTwice = max(0, reacceptedBlocks - pipeline.picker.discardedBlockCount)
        return result
    }

    // MARK: - Events

    private mutating func handle(_ event: Event) {
        switch event {
        case .join(let index):
            guard !peers[index].isBanned else { return }
            peers[index].isConnected = true
            peers[index].epoch += 1
            peers[index].connection += 1
            peers[index].linkFreeAt = now
            peers[index].cancelArrivals.removeAll()
            pipeline.peerConnected(peers[index].slot)
            if peers[index].isSeed {
                pipeline.peerHaveAll(peers[index].slot, into: &actions)
            } else {
                pipeline.peerBitfield(peers[index].slot, peers[index].has, into: &actions)
            }
            record(1, index)
            schedule(.unchoke(index, epoch: peers[index].epoch), after: 0.1 + 2 * unit())
            if parameters.churn && !peers[index].isSeed && !peers[index].isLiar {
                schedule(.leave(index, connection: peers[index].connection), after: 3 + 27 * unit())
            }
        case .leave(let index, let connection):
            guard peers[index].isConnected, peers[index].connection == connection else { return }
            disconnect(index)
            record(2, index)
            result.departures += 1
            schedule(.join(index), after: 2 + 8 * unit())
        case .unchoke(let index, let epoch):
            guard peers[index].isConnected, peers[index].epoch == epoch else { return }
            pipeline.peerUnchokedUs(peers[index].slot, at: instant, into: &actions)
            record(3, index)
            sendActions()
            if parameters.churn && !peers[index].isSeed {
                schedule(.choke(index, epoch: epoch), after: 2 + 13 * unit())
            }
        case .choke(let index, let epoch):
            guard peers[index].isConnected, peers[index].epoch == epoch else { return }
            peers[index].epoch += 1
            peers[index].linkFreeAt = now
            pipeline.peerChokedUs(peers[index].slot)
            record(4, index)
            result.chokes += 1
            schedule(.unchoke(index, epoch: peers[index].epoch), after: 1 + 4 * unit())
        case .deliver(let index, let block, let epoch, let sendStart, let corrupt):
            guard peers[index].isConnected, peers[index].epoch == epoch else { return }
            if let cancelArrival = peers[index].cancelArrivals.removeValue(forKey: block),
                cancelArrival <= sendStart
            {
                return
            }
            deliver(block, from: index, corrupt: corrupt)
        case .hashed(let piece):
            finishPiece(piece)
            sendActions()
        case .tick:
            pipeline.tick(at: instant, into: &actions)
            sendActions()
            noteEndgame()
            schedule(.tick, after: 1)
        }
    }

    private mutating func deliver(_ block: BlockRange, from index: Int, corrupt: Bool) {
        let slot = peers[index].slot
        let receipt = pipeline.blockReceived(block, from: slot, at: instant, into: &actions)
        record(5, index, block)
        switch receipt {
        case .duplicate, .unexpected:
            result.duplicatesRejected += 1
        case .accepted(let pieceComplete):
            if !acceptedBlocks.insert(block).inserted { reacceptedBlocks += 1 }
            if let last = lastAcceptedAt {
                result.longestGapSeconds = max(result.longestGapSeconds, now - last)
            }
            lastAcceptedAt = now
            if firstAcceptedAt == nil { firstAcceptedAt = now }
            bytesAccepted += Int(block.length)
            if corrupt { corruptBlocks.insert(block) } else { corruptBlocks.remove(block) }
            if pieceComplete {
                if parameters.hashSeconds > 0 {
                    schedule(.hashed(block.piece), after: parameters.hashSeconds)
                } else {
                    finishPiece(block.piece)
                }
            }
        }
        result.mostPiecesInProgress = max(result.mostPiecesInProgress, pipeline.picker.inProgressCount)
        sendActions()
        noteEndgame()
    }

    private mutating func finishPiece(_ piece: PieceIndex) {
        let blockCount = pipeline.picker.geometry.blockCount(of: piece)
        let blocks = (0..<blockCount).map { pipeline.picker.geometry.block($0, of: piece) }
        // A digest stands for a checksum of the bytes: equal for good copies, different for corrupt ones.
        let digests = blocks.map { block in
            UInt64(block.piece.value) << 32 | UInt64(block.offset)
                | (corruptBlocks.contains(block) ? 1 << 63 : 0)
        }
        let isCorrupt = blocks.contains { corruptBlocks.contains($0) }
        for block in blocks {
            acceptedBlocks.remove(block)
            corruptBlocks.remove(block)
        }
        let toBan: [PeerSlot]
        if !isCorrupt {
            toBan = pipeline.pieceHashPassed(
                piece, blockDigests: parameters.blockDigests ? digests : nil, at: instant, into: &actions)
            result.verificationOrder.append(piece.int)
        } else {
            result.hashFailures += 1
            toBan =
                pipeline.pieceHashFailed(
                    piece, blockDigests: parameters.blockDigests ? digests : nil, at: instant, into: &actions
                ).peersToBan
        }
        for banned in toBan {
            let index = banned.index
            peers[index].isBanned = true
            if peers[index].isLiar {
                result.bannedLiars.insert(banned)
            } else {
                result.bannedHonestPeers.insert(banned)
            }
            sendActions()
            disconnect(index)
            record(6, index)
        }
    }

    private mutating func disconnect(_ index: Int) {
        peers[index].isConnected = false
        peers[index].epoch += 1
        pipeline.peerDisconnected(peers[index].slot)
    }

    /// Turns the pipeline's actions into scheduled deliveries and cancels.
    private mutating func sendActions() {
        for action in actions {
            switch action {
            case .request(let slot, let block):
                let index = slot.index
                if requestedPieces.insert(block.piece).inserted {
                    result.requestOrder.append(block.piece.int)
                    result.availabilityInRequestOrder.append(nonSeedAvailability[block.piece.int])
                }
                let latency = peers[index].latencySeconds
                let sendStart = max(now + latency, peers[index].linkFreeAt)
                let sendEnd = sendStart + Double(block.length) / peers[index].bandwidthBytesPerSecond
                peers[index].linkFreeAt = sendEnd
                let corrupt = peers[index].isLiar && unit() < parameters.liarCorruptionProbability
                peers[index].cancelArrivals.removeValue(forKey: block)
                queue.push(
                    .deliver(index, block, epoch: peers[index].epoch, sendStart: sendStart, corrupt: corrupt),
                    at: sendEnd + latency)
            case .cancel(let slot, let block):
                result.cancelsSent += 1
                peers[slot.index].cancelArrivals[block] = now + peers[slot.index].latencySeconds
            case .interested, .notInterested:
                // Simulated peers unchoke us regardless; the pipeline's interest is checked by unit tests.
                break
            }
        }
        actions.removeAll(keepingCapacity: true)
    }

    // MARK: - Helpers

    private var instant: Instant { .seconds(now) }

    private mutating func noteEndgame() {
        if endgameStartedAt == nil && pipeline.picker.isEndgame {
            endgameStartedAt = now
            bytesAcceptedBeforeEndgame = bytesAccepted
        }
    }

    private mutating func schedule(_ event: Event, after seconds: Double) {
        queue.push(event, at: now + seconds)
    }

    private mutating func unit() -> Double { Double(random.next() >> 11) / Double(1 << 53) }

    private mutating func record(_ kind: UInt64, _ index: Int, _ block: BlockRange? = nil) {
        for value in [
            kind, UInt64(index), UInt64(now * 1e6), UInt64(block?.piece.value ?? 0),
            UInt64(block?.offset ?? 0),
        ] {
            result.fingerprint = (result.fingerprint ^ value) &* 0x100_0000_01b3
        }
    }
}

/// 100^x for x in [0, 1], without Foundation: a few multiplications are exact enough for a bandwidth.
private func pow100(_ x: Double) -> Double {
    var result = 1.0
    var remaining = x * 100
    while remaining >= 1 {
        result *= 1.047_128_548_050_9  // 100^(1/100)
        remaining -= 1
    }
    return result * (1 + remaining * 0.047_128_548_050_9)
}

/// A binary min-heap of events by time, ties broken by insertion order so runs are deterministic.
struct EventQueue<Event> {
    private var heap: [(time: Double, sequence: Int, event: Event)] = []
    private var nextSequence = 0

    var isEmpty: Bool { heap.isEmpty }

    mutating func push(_ event: Event, at time: Double) {
        heap.append((time, nextSequence, event))
        nextSequence += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard isEarlier(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (Double, Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && isEarlier(left, smallest) { smallest = left }
            if right < heap.count && isEarlier(right, smallest) { smallest = right }
            guard smallest != parent else { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.event)
    }

    private func isEarlier(_ a: Int, _ b: Int) -> Bool {
        heap[a].time != heap[b].time ? heap[a].time < heap[b].time : heap[a].sequence < heap[b].sequence
    }
}
