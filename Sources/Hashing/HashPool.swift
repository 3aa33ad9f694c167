import Buffers
import Glibc

/// What a hash job computes over its buffer.
public enum HashJobKind: Hashable, Sendable {
    /// SHA-1 of the bytes: a v1 piece.
    case sha1
    /// SHA-256 of the bytes.
    case sha256
    /// BEP 52: the merkle root over the bytes' 16 KiB blocks (the last may be short), padded with zero
    /// leaves to `leafCount` (a power of two). A v2 piece-layer hash, or the root of a file shorter
    /// than a piece.
    case merkleRoot(leafCount: Int)
    /// A hybrid piece: SHA-1 over the first `sha1Length` bytes (the piece with its padding zeros) and
    /// the merkle root over the job's length (the file's own bytes in that piece).
    case sha1AndMerkleRoot(sha1Length: Int, leafCount: Int)
}

/// A job's digests.
public enum PieceDigest: Hashable, Sendable {
    case sha1(SHA1Digest)
    case sha256(SHA256Digest)
    case merkleRoot(SHA256Digest)
    case sha1AndMerkleRoot(SHA1Digest, SHA256Digest)
}

/// A finished hash job: the caller's token, the buffer it hashed (leased to the caller again; nil for a
/// job over the caller's own memory), the digest.
public struct HashResult: Sendable {
    public let token: UInt64
    public let slot: BufferSlot?
    public let digest: PieceDigest
}

/// Worker threads that hash pieces in place, in the buffer they arrived in. A worker that finds SHA-1
/// jobs queued one after another takes up to sixteen at once for `SHA1Lanes`.
///
/// The owner thread (the reactor) submits a leased `BufferPool` slot; the pool marks it lent, so it
/// cannot be released or reused while a worker reads it. Workers hash without copying and queue the
/// result; `onResultsReady` tells the owner (for instance by waking its ring), and `drain` hands the
/// results over and takes the slots back. Only pointers cross threads, never the piece's bytes. The
/// owner may also submit memory of its own (a read-only file mapping), which it keeps valid until the
/// result is drained.
///
/// Invariants: every submitted job yields exactly one result; a slot is lent from `submit` until the
/// `drain` that returns its result; `onResultsReady` is called once per batch of results that found
/// the result queue empty, so wake-ups coalesce.
public final class HashPool: @unchecked Sendable {
    public let threadCount: Int

    private struct Job {
        let token: UInt64
        let slot: BufferSlot?
        /// The whole slot (or the caller's memory); `length` of it is the job's data.
        let bytes: UnsafeRawBufferPointer
        let length: Int
        let kind: HashJobKind
    }

    private let lock = ConditionLock()
    /// Signalled when a job is queued or the pool stops.
    private let jobQueued = ConditionLock.Condition()
    /// Signalled when a result is queued.
    private let resultQueued = ConditionLock.Condition()
    private var jobs: [Job] = []
    private var jobHead = 0
    private var results: [HashResult] = []
    private var stopping = false
    private var threads: [pthread_t] = []
    private let onResultsReady: @Sendable () -> Void
    private var submittedCount = 0
    /// The hashers of a pool without workers.
    private lazy var inlineHashers = InlineHashers()

    private struct InlineHashers {
        let sha1 = StreamingHasher(.sha1)
        let sha256 = StreamingHasher(.sha256)
        var merkle = MerkleHasher()
    }

    /// Starts `threadCount` workers (default: one per core). `onResultsReady` runs on a worker thread.
    /// Throws when the system refuses a thread (the process or pids-cgroup limit, or memory for its
    /// stack); the workers already started are stopped first. With no workers, each job is hashed
    /// as it is submitted, on the caller's thread (deterministic simulations), and `onResultsReady`
    /// is never called.
    public init(
        threadCount: Int = HashPool.coreCount, onResultsReady: @escaping @Sendable () -> Void = {}
    ) throws(HashPoolError) {
        precondition(threadCount >= 0, "a negative thread count")
        self.threadCount = threadCount
        self.onResultsReady = onResultsReady
        for _ in 0..<threadCount {
            var thread = pthread_t()
            let context = Unmanaged.passUnretained(self).toOpaque()
            let created = pthread_create(
                &thread, nil,
                { raw in
                    Unmanaged<HashPool>.fromOpaque(raw!).takeUnretainedValue().work()
                    return nil
                }, context)
            guard created == 0 else {
                // The workers that started are stopped and joined before `deinit` runs.
                shutdown()
                throw HashPoolError(errno: created)
            }
            threads.append(thread)
        }
    }

    deinit {
        shutdown()
    }

    /// The number of online cores.
    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// How many jobs are submitted and not yet drained.
    public var outstandingCount: Int { submittedCount }

    /// Hashes the first `length` bytes of `slot`. The slot is lent to the pool until its result is drained.
    public func submit(
        _ slot: BufferSlot, length: Int, in pool: BufferPool, kind: HashJobKind, token: UInt64
    ) {
        let memory = pool.bytes(of: slot)
        precondition(length >= 0 && length <= memory.count, "hash length exceeds the buffer")
        switch kind {
        case .sha1, .sha256: break
        case .merkleRoot(let leafCount):
            Self.checkMerkleShape(length: length, leafCount: leafCount)
        case .sha1AndMerkleRoot(let sha1Length, let leafCount):
            precondition(sha1Length >= length && sha1Length <= memory.count, "SHA-1 length out of the buffer")
            Self.checkMerkleShape(length: length, leafCount: leafCount)
        }
        pool.lend(slot)
        enqueue(
            Job(token: token, slot: slot, bytes: UnsafeRawBufferPointer(memory), length: length, kind: kind))
    }

    /// Hashes `bytes`, memory the caller keeps readable until the result is drained: a read-only
    /// mapping of a file, for instance, hashed where it lies in the page cache instead of being copied
    /// into a buffer first. Jobs that need zeros after the data (a padded hybrid piece) use a buffer.
    public func submit(_ bytes: UnsafeRawBufferPointer, kind: HashJobKind, token: UInt64) {
        switch kind {
        case .sha1, .sha256: break
        case .merkleRoot(let leafCount):
            Self.checkMerkleShape(length: bytes.count, leafCount: leafCount)
        case .sha1AndMerkleRoot(let sha1Length, let leafCount):
            precondition(sha1Length == bytes.count, "only a buffer has room for padding zeros")
            Self.checkMerkleShape(length: bytes.count, leafCount: leafCount)
        }
        enqueue(Job(token: token, slot: nil, bytes: bytes, length: bytes.count, kind: kind))
    }

    /// A caller's broken arithmetic, not a peer's data: callers derive both numbers from the torrent
    /// (a v2 piece's from `V2PieceCheck`), for which they always fit.
    private static func checkMerkleShape(length: Int, leafCount: Int) {
        precondition(
            MerkleHasher.fits(length: length, leafCount: leafCount),
            "\(length) bytes do not fit a merkle tree of \(leafCount) leaves of 16 KiB (a power of two)")
    }

    private func enqueue(_ job: Job) {
        submittedCount += 1
        if threadCount == 0 {
            let digest = Self.digest(
                of: job, sha1: inlineHashers.sha1, sha256: inlineHashers.sha256, merkle: &inlineHashers.merkle
            )
            lock.withLock { results.append(HashResult(token: job.token, slot: job.slot, digest: digest)) }
            return
        }
        lock.withLock {
            jobs.append(job)
            lock.signal(jobQueued)
        }
    }

    /// Hands every finished result to `body`, after giving its slot back to the caller (leased again).
    /// With `wait`, blocks until at least one result is ready (if any job is outstanding).
    @discardableResult
    public func drain(
        into pool: BufferPool, wait: Bool = false, _ body: (HashResult) throws -> Void
    ) rethrows -> Int {
        try drainUnclaimed(wait: wait) { result in
            if let slot = result.slot { pool.reclaim(slot) }
            try body(result)
        }
    }

    /// Hands every finished result to `body`, whose slot is still lent: for a pool shared by callers
    /// with pools of their own (the torrents of one reactor), each reclaims its slot into its pool.
    @discardableResult
    public func drainUnclaimed(wait: Bool = false, _ body: (HashResult) throws -> Void) rethrows -> Int {
        let ready: [HashResult] = lock.withLock {
            while wait && results.isEmpty && submittedCount > 0 { lock.wait(resultQueued) }
            defer { results.removeAll(keepingCapacity: true) }
            return results
        }
        submittedCount -= ready.count
        for result in ready { try body(result) }
        return ready.count
    }

    /// Stops the workers after the queued jobs are done. Idempotent.
    public func shutdown() {
        let toJoin: [pthread_t] = lock.withLock {
            stopping = true
            lock.broadcast(jobQueued)
            defer { threads = [] }
            return threads
        }
        for thread in toJoin { pthread_join(thread, nil) }
    }

    private func work() {
        let sha1 = StreamingHasher(.sha1)
        let sha256 = StreamingHasher(.sha256)
        var merkle = MerkleHasher()
        let lanes = SHA1Lanes.isAvailable ? SHA1Lanes() : nil
        var taken: [Job] = []
        var finished: [HashResult] = []
        while true {
            taken.removeAll(keepingCapacity: true)
            lock.withLock {
                while jobHead == jobs.count && !stopping { lock.wait(jobQueued) }
                // SHA-1 jobs queued one after another are taken together, as many as the lanes hold.
                while jobHead < jobs.count,
                    taken.isEmpty
                        || (lanes != nil && taken.count < SHA1Lanes.laneCount && taken[0].kind == .sha1
                            && jobs[jobHead].kind == .sha1)
                {
                    taken.append(jobs[jobHead])
                    jobHead += 1
                }
                if jobHead == jobs.count {
                    // The queue is empty: reset it in place instead of letting it grow.
                    jobs.removeAll(keepingCapacity: true)
                    jobHead = 0
                }
            }
            guard !taken.isEmpty else { return }
            finished.removeAll(keepingCapacity: true)
            if let lanes, taken.count >= SHA1Lanes.worthwhileCount {
                let digests = lanes.digests(
                    of: taken.map { UnsafeRawBufferPointer(rebasing: $0.bytes[..<$0.length]) })
                for (job, digest) in zip(taken, digests) {
                    finished.append(HashResult(token: job.token, slot: job.slot, digest: .sha1(digest)))
                }
            } else {
                for job in taken {
                    let digest = Self.digest(of: job, sha1: sha1, sha256: sha256, merkle: &merkle)
                    finished.append(HashResult(token: job.token, slot: job.slot, digest: digest))
                }
            }
            let wasEmpty: Bool = lock.withLock {
                results.append(contentsOf: finished)
                lock.signal(resultQueued)
                return results.count == finished.count
            }
            if wasEmpty { onResultsReady() }
        }
    }

    private static func digest(
        of job: Job, sha1: StreamingHasher, sha256: StreamingHasher, merkle: inout MerkleHasher
    ) -> PieceDigest {
        let data = UnsafeRawBufferPointer(rebasing: job.bytes[..<job.length])
        switch job.kind {
        case .sha1:
            sha1.update(data)
            return .sha1(sha1.finishSHA1())
        case .sha256:
            sha256.update(data)
            return .sha256(sha256.finishSHA256())
        case .merkleRoot(let leafCount):
            return .merkleRoot(merkle.root(of: data, leafCount: leafCount, hasher: sha256))
        case .sha1AndMerkleRoot(let sha1Length, let leafCount):
            sha1.update(UnsafeRawBufferPointer(rebasing: job.bytes[..<sha1Length]))
            return .sha1AndMerkleRoot(
                sha1.finishSHA1(), merkle.root(of: data, leafCount: leafCount, hasher: sha256))
        }
    }
}

/// The system would not start a hashing thread.
public struct HashPoolError: Error, Equatable, CustomStringConvertible {
    /// What `pthread_create` returned: `EAGAIN` at a thread limit, `ENOMEM` without memory for a stack.
    public let errno: Int32

    public var description: String {
        let reason = String(cString: strerror(errno))
        let hint =
            errno == EAGAIN
            ? "; the process or system thread limit is reached (`ulimit -u`, a pids cgroup, kernel.threads-max)"
            : ""
        return "cannot start a hashing thread: \(reason)\(hint)"
    }
}

/// A pthread mutex with condition variables: the workers' queue needs both, and the standard library
/// has no condition variable.
final class ConditionLock: @unchecked Sendable {
    /// A condition variable used with this lock.
    final class Condition: @unchecked Sendable {
        fileprivate let raw = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

        init() { pthread_cond_init(raw, nil) }

        deinit {
            pthread_cond_destroy(raw)
            raw.deallocate()
        }
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for `condition`; call with the lock held.
    func wait(_ condition: Condition) { pthread_cond_wait(condition.raw, mutex) }
    func signal(_ condition: Condition) { pthread_cond_signal(condition.raw) }
    func broadcast(_ condition: Condition) { pthread_cond_broadcast(condition.raw) }
}
