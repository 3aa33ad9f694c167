import Buffers
import Hashing
import Metainfo
import TorrentModel
import URing

/// What a recheck found for one piece.
public enum RecheckOutcome: Hashable, Sendable {
    /// The piece matches its hash.
    case verified
    /// The piece was read but does not match its hash.
    case hashMismatch
    /// A file the piece needs does not exist or is too short: the piece was never downloaded.
    case missing
    /// No hash is known for the piece (a v2 torrent from a magnet link, before its piece layers).
    case noHash
    /// Reading failed for another reason (permissions, a refused symlink, a disk error).
    case readFailed(StorageError)
}

/// What a `Recheck` reports.
public enum RecheckEvent: Hashable, Sendable {
    case pieceChecked(PieceIndex, RecheckOutcome)
    /// Every piece asked for was checked; the set of those that verified.
    case finished(PieceSet)
}

/// Rechecks a torrent's data on disk: reads pieces through the ring into pool slots, hashes them on the
/// hashing pool and compares with the torrent's hashes (v1: SHA-1; v2: the piece-layer merkle root, or a
/// short file's root; hybrid: SHA-1 is enough).
///
/// Like `PieceStore` it is driven by the reactor: ring completions with ``owner`` go to
/// ``handle(_:into:)-(Completion,_)``, hashing results with ``ownsHashToken(_:)`` to
/// ``handle(_:into:)-(HashResult,_)``. It reads through a read-only `PieceStore` of its own, so a file
/// that is missing only leaves its pieces unverified.
///
/// Invariants: at most `maxPiecesInFlight` pieces are being read or hashed, each in a slot leased from
/// the pool and released when its outcome is known; each piece asked for gets exactly one
/// `.pieceChecked`, then `.finished` comes once.
public final class Recheck {
    /// The default owner byte of a recheck's ring tokens and the top byte of its hash tokens.
    public static let completionOwner: UInt8 = 3

    /// The torrent being checked: its layout and hashes.
    public let metainfo: Metainfo
    /// Bytes of all pieces asked for.
    public let totalBytes: Int64
    /// Bytes of the pieces whose outcome is known.
    public private(set) var checkedBytes: Int64 = 0
    /// The pieces that verified so far.
    public private(set) var verified: PieceSet
    /// Whether every piece asked for was checked.
    public private(set) var isFinished = false

    private let store: PieceStore
    private let pool: BufferPool
    private let hashPool: HashPool
    private let pieces: [PieceIndex]
    private var nextPiece = 0
    private var piecesInFlight = 0
    private var stopped = false
    private let maxPiecesInFlight: Int
    private var storeEvents: [StorageEvent] = []

    /// Prepares a recheck of `pieces` (all by default) of the torrent stored under `downloadDirectory`
    /// (its files where `layout` says, by default the metainfo's paths). Pool slots must hold a whole
    /// piece.
    public init(
        metainfo: Metainfo, layout: FileLayout? = nil, downloadDirectory: String, ring: Ring,
        pool: BufferPool, hashPool: HashPool,
        pieces: [PieceIndex]? = nil, maxPiecesInFlight: Int = 4, owner: UInt8 = Recheck.completionOwner,
        tenant: UInt16 = 0,
        storeOptions: PieceStore.Options = PieceStore.Options(maxOpenFiles: 16, readOnly: true)
    ) throws(StorageError) {
        precondition(maxPiecesInFlight > 0, "a recheck needs at least one piece in flight")
        guard pool.slotSizeBytes >= metainfo.pieceLength else {
            throw StorageError(
                .read, path: metainfo.name,
                reason: .bufferTooSmall(
                    requiredBytes: metainfo.pieceLength, availableBytes: pool.slotSizeBytes))
        }
        var options = storeOptions
        options.readOnly = true
        store = try PieceStore(
            layout: layout ?? metainfo.layout, downloadDirectory: downloadDirectory, ring: ring,
            options: options,
            owner: owner, tenant: tenant)
        self.metainfo = metainfo
        self.pool = pool
        self.hashPool = hashPool
        self.maxPiecesInFlight = maxPiecesInFlight
        let geometry = metainfo.geometry
        let chosen =
            pieces?.filter { $0.int < geometry.pieceCount }
            ?? (0..<geometry.pieceCount).map { PieceIndex($0) }
        self.pieces = chosen
        totalBytes = chosen.reduce(0) { $0 + Int64(geometry.length(of: $1)) }
        verified = PieceSet(pieceCount: geometry.pieceCount)
    }

    /// The owner byte of this recheck's ring tokens.
    public var owner: UInt8 { store.owner }

    /// The ring user this recheck works for (stamped on its ring and hash tokens).
    public var tenant: UInt16 { store.tenant }

    /// Whether a hashing result belongs to this recheck: its hash tokens are the owner (8 bits), the
    /// tenant (16) and the piece (32), as the reactor's hash routing expects.
    public func ownsHashToken(_ token: UInt64) -> Bool {
        token >> 56 == UInt64(owner) && UInt16(truncatingIfNeeded: token >> 32) == tenant
    }

    /// Starts reading. Call it again after slots of a shared pool were released elsewhere: a recheck
    /// that found the pool empty waits for that.
    public func start(into events: inout [RecheckEvent]) {
        issueReads()
        finishIfDone(into: &events)
    }

    /// Reads no more pieces; those already read or being hashed still finish. The caller drains until
    /// `hasWorkInFlight` is false before it lets the pool, the ring or the hashers go: their memory is
    /// still being written to.
    public func stop() { stopped = true }

    /// Whether reads or hash jobs of this recheck are outstanding.
    public var hasWorkInFlight: Bool { piecesInFlight > 0 }

    /// Takes a ring completion with this recheck's owner.
    public func handle(_ completion: Completion, into events: inout [RecheckEvent]) {
        store.handle(completion, into: &storeEvents)
        for event in storeEvents {
            switch event {
            case .pieceRead(let piece, let slot):
                hash(piece, in: slot, into: &events)
            case .failed(.readPiece(let piece, let slot), let error):
                pool.release(slot)
                let missing = error.errno == .noSuchFile || error.reason == .unexpectedEndOfFile
                record(piece, missing ? .missing : .readFailed(error), into: &events)
            default:
                // The store only reads pieces for a recheck.
                break
            }
        }
        storeEvents.removeAll(keepingCapacity: true)
        issueReads()
        finishIfDone(into: &events)
    }

    /// Takes a hashing result whose token this recheck owns.
    public func handle(_ result: HashResult, into events: inout [RecheckEvent]) {
        guard ownsHashToken(result.token) else { return }
        guard let slot = result.slot else { preconditionFailure("a recheck hashes only its own buffers") }
        pool.release(slot)
        let piece = PieceIndex(UInt32(truncatingIfNeeded: result.token))
        let matches: Bool
        switch result.digest {
        case .sha1(let digest): matches = metainfo.pieceHash(piece) == digest
        case .merkleRoot(let root): matches = metainfo.v2PieceCheck(piece)?.expectedRoot == root
        default: matches = false
        }
        record(piece, matches ? .verified : .hashMismatch, into: &events)
        issueReads()
        finishIfDone(into: &events)
    }

    private func issueReads() {
        while !stopped, piecesInFlight < maxPiecesInFlight, nextPiece < pieces.count, let slot = pool.lease()
        {
            store.readPiece(pieces[nextPiece], into: slot, in: pool)
            nextPiece += 1
            piecesInFlight += 1
        }
    }

    private func hash(_ piece: PieceIndex, in slot: BufferSlot, into events: inout [RecheckEvent]) {
        let token = UInt64(owner) << 56 | UInt64(tenant) << 32 | UInt64(piece.value)
        let length = metainfo.geometry.length(of: piece)
        // Hybrids carry SHA-1 for every piece, and it covers the padding too.
        if metainfo.version != .v2 {
            return hashPool.submit(slot, length: length, in: pool, kind: .sha1, token: token)
        }
        guard let check = metainfo.v2PieceCheck(piece) else {
            pool.release(slot)
            return record(piece, .noHash, into: &events)
        }
        // Only the file's own bytes: the alignment gap after a file's last piece is in no hash.
        hashPool.submit(
            slot, length: check.dataLength, in: pool, kind: .merkleRoot(leafCount: check.leafCount),
            token: token)
    }

    private func record(_ piece: PieceIndex, _ outcome: RecheckOutcome, into events: inout [RecheckEvent]) {
        piecesInFlight -= 1
        checkedBytes += Int64(metainfo.geometry.length(of: piece))
        if outcome == .verified { verified.insert(piece) }
        events.append(.pieceChecked(piece, outcome))
    }

    private func finishIfDone(into events: inout [RecheckEvent]) {
        guard !isFinished, nextPiece == pieces.count, piecesInFlight == 0 else { return }
        isFinished = true
        events.append(.finished(verified))
    }
}
