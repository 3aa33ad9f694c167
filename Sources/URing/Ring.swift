import Buffers
import CLibUring
import Glibc

/// Optional io_uring features. The ring probes the kernel for each at start-up; callers ask
/// `Ring.features` and take the fallback path for whatever is absent.
public struct RingFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// One accept submission yields a completion per incoming connection (Linux 5.19).
    public static let multishotAccept = RingFeatures(rawValue: 1 << 0)
    /// One recv submission yields a completion per arrival, into provided buffers (Linux 6.0).
    public static let multishotReceive = RingFeatures(rawValue: 1 << 1)
    /// Receive buffers handed to the kernel through a shared ring (Linux 5.19).
    public static let providedBufferRing = RingFeatures(rawValue: 1 << 2)
    /// `IORING_OP_SEND_ZC` (Linux 6.0).
    public static let sendZeroCopy = RingFeatures(rawValue: 1 << 3)
    /// Registered (fixed) buffers for disk reads and writes.
    public static let registeredBuffers = RingFeatures(rawValue: 1 << 4)
    /// A sparse registered file table (Linux 5.19).
    public static let registeredFiles = RingFeatures(rawValue: 1 << 5)
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: completions are processed only when the owner thread waits,
    /// which saves interrupts and context switches (Linux 6.1).
    public static let deferredTaskRun = RingFeatures(rawValue: 1 << 6)

    public static let all: RingFeatures = [
        .multishotAccept, .multishotReceive, .providedBufferRing, .sendZeroCopy, .registeredBuffers,
        .registeredFiles, .deferredTaskRun,
    ]

    static let names: [(RingFeatures, String)] = [
        (.multishotAccept, "multishot-accept"), (.multishotReceive, "multishot-recv"),
        (.providedBufferRing, "provided-buffer-ring"), (.sendZeroCopy, "send-zc"),
        (.registeredBuffers, "registered-buffers"), (.registeredFiles, "registered-files"),
        (.deferredTaskRun, "defer-taskrun"),
    ]

    public var description: String {
        let present = Self.names.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "none" : present.joined(separator: " ")
    }
}

/// How to set up a ring.
public struct RingOptions: Sendable {
    /// Submission queue entries; the completion queue gets four times as many, since multishot
    /// operations produce many completions per submission.
    public var entries: UInt32 = 256
    /// Features not to use even where the kernel has them: for tests of the fallback paths, and for
    /// users who hit a kernel bug.
    public var disabledFeatures: RingFeatures = []

    public init(entries: UInt32 = 256, disabledFeatures: RingFeatures = []) {
        self.entries = entries
        self.disabledFeatures = disabledFeatures
    }
}

/// A Swift owner of one io_uring instance: batched submission, completions by token, cross-thread wake.
///
/// Invariants:
/// - One thread owns the ring: it submits, waits and drains (with `deferredTaskRun` the kernel enforces
///   this: create the ring on the thread that will use it).
/// - Every submission carries a `CompletionToken`; completions are handed to the caller in `drain`, with
///   the ring's own wake-up completions filtered out.
/// - Small arguments (socket addresses, timeouts, paths) live in per-entry scratch space until the kernel
///   has consumed the entry, which `IORING_FEAT_SUBMIT_STABLE` guarantees happens at submit time.
/// - Nothing is allocated per operation except the paths of `openat`, `statx`, `renameat` and `unlinkat`.
public final class Ring {
    /// The features in use: what the kernel has, less `RingOptions.disabledFeatures`.
    public let features: RingFeatures
    /// Submission queue size.
    public let entries: UInt32

    private let ring: UnsafeMutablePointer<io_uring>
    private let timespecs: UnsafeMutablePointer<__kernel_timespec>
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private var paths: [[CChar]]
    private let completionBatch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let completionBatchSize: UInt32 = 256

    private let wakeFD: Int32
    private let wakeValue: UnsafeMutablePointer<UInt64>
    private var wakeArmed = false
    /// What runs the operations in place of the kernel (nil: the kernel does).
    private let simulator: (any RingSimulator)?
    private var simulatedCompletions: [Completion] = []
    private var registeredBufferCount = 0
    /// Operations handed to the kernel (or queued for it) whose last completion has not been drained:
    /// one that grows without bound is a leak (a soak test watches it). A multishot operation counts
    /// once until its final completion, a zero-copy send until its notification; the read armed on the
    /// wake-up eventfd counts too.
    public private(set) var operationsInFlight = 0

    /// Probes the kernel and sets up a ring; throws a `RingUnavailableError` that tells the user why
    /// io_uring cannot be used and how to fix it.
    public init(options: RingOptions = RingOptions()) throws(RingUnavailableError) {
        // Every stored property is set only after the last check that can fail: a class whose
        // properties are all set runs `deinit` when its initializer throws, and `deinit` would then
        // release the ring a second time.
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())

        let wanted = RingFeatures.all.subtracting(options.disabledFeatures)
        var deferred = wanted.contains(.deferredTaskRun)
        var setupResult = Self.setUp(ring, entries: options.entries, deferredTaskRun: deferred)
        if setupResult == -EINVAL && deferred {
            // Kernels before 6.1 reject the flags they do not know; the ring works without them.
            deferred = false
            setupResult = Self.setUp(ring, entries: options.entries, deferredTaskRun: false)
        }
        guard setupResult == 0 else {
            ring.deallocate()
            throw RingUnavailableError.explaining(
                setupErrno: Errno(rawValue: -setupResult), disabledSetting: Self.ioUringDisabledSetting())
        }
        var ready = false
        defer {
            if !ready {
                io_uring_queue_exit(ring)
                ring.deallocate()
            }
        }

        let kernelFeatures = ring.pointee.features
        let requiredFlags: [(UInt32, String)] = [
            (IORING_FEAT_NODROP, "IORING_FEAT_NODROP"),
            (IORING_FEAT_SUBMIT_STABLE, "IORING_FEAT_SUBMIT_STABLE"),
            (IORING_FEAT_EXT_ARG, "IORING_FEAT_EXT_ARG"),
        ]
        for (flag, name) in requiredFlags where kernelFeatures & flag == 0 {
            throw .missing(name)
        }

        var available: RingFeatures = [.registeredBuffers]
        if deferred { available.insert(.deferredTaskRun) }
        let probe = io_uring_get_probe_ring(ring)
        defer { io_uring_free_probe(probe) }
        let required: [(io_uring_op, String)] = [
            (IORING_OP_ACCEPT, "accept"), (IORING_OP_CONNECT, "connect"), (IORING_OP_RECV, "recv"),
            (IORING_OP_SEND, "send"), (IORING_OP_READ, "read"), (IORING_OP_WRITE, "write"),
            (IORING_OP_OPENAT, "openat"), (IORING_OP_CLOSE, "close"), (IORING_OP_STATX, "statx"),
            (IORING_OP_FALLOCATE, "fallocate"), (IORING_OP_TIMEOUT, "timeout"),
            (IORING_OP_LINK_TIMEOUT, "link_timeout"), (IORING_OP_ASYNC_CANCEL, "async_cancel"),
        ]
        for (op, name) in required
        where probe == nil || io_uring_opcode_supported(probe, Int32(op.rawValue)) == 0 {
            throw .missing("the \(name) operation")
        }
        if io_uring_opcode_supported(probe, Int32(IORING_OP_SEND_ZC.rawValue)) != 0 {
            available.insert(.sendZeroCopy)
        }
        // Multishot variants and buffer rings have no opcode of their own to probe; they arrived
        // with known kernel versions, and SEND_ZC (6.0) dates the kernel too.
        let version = Self.kernelVersion()
        if version >= (5, 19) {
            available.formUnion([.multishotAccept, .providedBufferRing, .registeredFiles])
        }
        if version >= (6, 0) { available.insert(.multishotReceive) }

        // A blocking eventfd: the kernel polls it for us, so the read completes only on a wake.
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            let errno = Errno(rawValue: Glibc.errno)
            throw RingUnavailableError(
                errno: errno, description: "cannot create an eventfd for ring wake-ups: \(errno)")
        }
        ready = true

        self.ring = ring
        self.wakeFD = wakeFD
        entries = options.entries
        features = available.intersection(wanted)
        let sqEntries = Int(ring.pointee.sq.ring_entries)
        timespecs = .allocate(capacity: sqEntries)
        timespecs.initialize(repeating: __kernel_timespec(), count: sqEntries)
        addresses = .allocate(capacity: sqEntries)
        addresses.initialize(repeating: sockaddr_storage(), count: sqEntries)
        paths = Array(repeating: [], count: sqEntries)
        completionBatch = .allocate(capacity: Int(completionBatchSize))
        completionBatch.initialize(repeating: nil, count: Int(completionBatchSize))
        wakeValue = .allocate(capacity: 1)
        wakeValue.initialize(to: 0)
        simulator = nil
    }

    /// A ring whose operations `simulator` runs instead of the kernel (see `RingSimulator`).
    public init(simulator: any RingSimulator, entries: UInt32 = 256) {
        self.simulator = simulator
        features = simulator.features
        self.entries = entries
        // Never set up: nothing reaches the kernel.
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        timespecs = .allocate(capacity: 1)
        addresses = .allocate(capacity: 1)
        paths = []
        completionBatch = .allocate(capacity: 1)
        completionBatch.initialize(to: nil)
        // Other threads may still ring (a hash pool's results); nobody waits on it.
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        wakeValue = .allocate(capacity: 1)
        wakeValue.initialize(to: 0)
    }

    deinit {
        if simulator == nil { io_uring_queue_exit(ring) }
        ring.deallocate()
        timespecs.deallocate()
        addresses.deallocate()
        completionBatch.deallocate()
        Glibc.close(wakeFD)
        wakeValue.deallocate()
    }

    private static func setUp(
        _ ring: UnsafeMutablePointer<io_uring>, entries: UInt32, deferredTaskRun: Bool
    ) -> Int32 {
        var params = io_uring_params()
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL
        params.cq_entries = entries * 4
        if deferredTaskRun { params.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN }
        return io_uring_queue_init_params(entries, ring, &params)
    }

    private static func ioUringDisabledSetting() -> Int? {
        let fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var text = [UInt8](repeating: 0, count: 16)
        let count = Glibc.read(fd, &text, text.count)
        guard count > 0 else { return nil }
        return Int(String(decoding: text[..<count].prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
    }

    /// The running kernel's major and minor version, from `uname`.
    static func kernelVersion() -> (Int, Int) {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : (0, 0)
    }

    // MARK: Submission

    /// Queues one operation for `slot`. It reaches the kernel at the next `submit` or `wait`, together
    /// with everything else queued: one system call for the whole batch. When the submission queue is
    /// full, the queued batch is submitted first.
    @discardableResult
    public func enqueue(
        _ operation: Operation, for slot: OperationSlot, flags: SubmissionFlags = []
    )
        throws(IOError) -> CompletionToken
    {
        let token = CompletionToken(slot: slot, kind: operation.kind)
        try enqueue(operation, token: token, flags: flags)
        return token
    }

    private func enqueue(
        _ operation: Operation, token: CompletionToken, flags: SubmissionFlags
    ) throws(IOError) {
        if let simulator {
            simulator.submit(operation, token: token, flags: flags)
            operationsInFlight += 1
            return
        }
        let sqe = try nextSubmissionEntry()
        prepare(sqe, entry: sqe - ring.pointee.sq.sqes, operation)
        io_uring_sqe_set_data64(sqe, token.rawValue)
        sqe.pointee.flags |= flags.rawValue
        // Every entry ends in one completion without IORING_CQE_F_MORE (none skips its success).
        operationsInFlight += 1
    }

    private func nextSubmissionEntry() throws(IOError) -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        let submitted = io_uring_submit(ring)
        guard submitted >= 0 else { throw IOError(.enter, result: submitted) }
        guard let sqe = io_uring_get_sqe(ring) else { throw IOError(.enter, errno: .resourceBusy) }
        return sqe
    }

    private func prepare(_ sqe: UnsafeMutablePointer<io_uring_sqe>, entry: Int, _ operation: Operation) {
        switch operation {
        case .nop:
            io_uring_prep_nop(sqe)
        case .accept(let fd, let multishot):
            let flags = potluck_sock_cloexec()
            if multishot {
                io_uring_prep_multishot_accept(sqe, fd, nil, nil, flags)
            } else {
                io_uring_prep_accept(sqe, fd, nil, nil, flags)
            }
        case .connect(let fd, let address):
            let length = address.write(to: addresses + entry)
            (addresses + entry).withMemoryRebound(to: sockaddr.self, capacity: 1) {
                io_uring_prep_connect(sqe, fd, $0, length)
            }
        case .receive(let fd, let buffer):
            io_uring_prep_recv(sqe, fd, buffer.baseAddress, buffer.count, 0)
        case .receiveProvided(let fd, let group, let multishot):
            if multishot {
                io_uring_prep_recv_multishot(sqe, fd, nil, 0, 0)
            } else {
                io_uring_prep_recv(sqe, fd, nil, 0, 0)
            }
            sqe.pointee.flags |= UInt8(1 << IOSQE_BUFFER_SELECT_BIT)
            sqe.pointee.buf_group = group
        case .send(let fd, let bytes):
            io_uring_prep_send(sqe, fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        case .sendMessage(let fd, let vector):
            vector.prepareHeader()
            io_uring_prep_sendmsg(sqe, fd, vector.message, UInt32(MSG_NOSIGNAL))
        case .sendDatagram(let fd, let datagram):
            io_uring_prep_sendmsg(sqe, fd, datagram.message, UInt32(MSG_NOSIGNAL))
        case .receiveDatagram(let fd, let datagram):
            datagram.prepareReceive()
            io_uring_prep_recvmsg(sqe, fd, datagram.message, 0)
        case .sendZeroCopy(let fd, let bytes):
            io_uring_prep_send_zc(sqe, fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), 0)
        case .read(let fd, let buffer, let offset):
            io_uring_prep_read(sqe, fd, buffer.baseAddress, UInt32(buffer.count), offset)
        case .write(let fd, let bytes, let offset):
            io_uring_prep_write(sqe, fd, bytes.baseAddress, UInt32(bytes.count), offset)
        case .readFixed(let fd, let buffer, let offset, let index):
            io_uring_prep_read_fixed(sqe, fd, buffer.baseAddress, UInt32(buffer.count), offset, Int32(index))
        case .writeFixed(let fd, let bytes, let offset, let index):
            io_uring_prep_write_fixed(sqe, fd, bytes.baseAddress, UInt32(bytes.count), offset, Int32(index))
        case .fsync(let fd, let dataOnly):
            io_uring_prep_fsync(sqe, fd, dataOnly ? IORING_FSYNC_DATASYNC : 0)
        case .openat(let directory, let path, let flags, let mode):
            paths[entry] = Array(path.utf8CString)
            paths[entry].withUnsafeBufferPointer {
                io_uring_prep_openat(sqe, directory, $0.baseAddress, flags, mode)
            }
        case .close(let fd):
            io_uring_prep_close(sqe, fd)
        case .renameat(let fromDirectory, let from, let toDirectory, let to, let flags):
            // Both names in the entry's one scratch array, one after the other.
            let fromBytes = Array(from.utf8CString)
            paths[entry] = fromBytes + Array(to.utf8CString)
            paths[entry].withUnsafeBufferPointer {
                io_uring_prep_renameat(
                    sqe, fromDirectory, $0.baseAddress, toDirectory, $0.baseAddress! + fromBytes.count, flags)
            }
        case .unlinkat(let directory, let path, let flags):
            paths[entry] = Array(path.utf8CString)
            paths[entry].withUnsafeBufferPointer {
                io_uring_prep_unlinkat(sqe, directory, $0.baseAddress, flags)
            }
        case .statx(let directory, let path, let flags, let mask, let into):
            paths[entry] = Array(path.utf8CString)
            paths[entry].withUnsafeBufferPointer {
                io_uring_prep_statx(sqe, directory, $0.baseAddress, flags, mask, into)
            }
        case .fallocate(let fd, let mode, let offset, let length):
            io_uring_prep_fallocate(sqe, fd, mode, off_t(offset), off_t(length))
        case .timeout(let duration, let count):
            timespecs[entry] = Self.timespec(duration)
            io_uring_prep_timeout(sqe, timespecs + entry, count, 0)
        case .linkTimeout(let duration):
            timespecs[entry] = Self.timespec(duration)
            io_uring_prep_link_timeout(sqe, timespecs + entry, 0)
        case .cancel(let target, let all):
            io_uring_prep_cancel64(sqe, target.rawValue, all ? Int32(IORING_ASYNC_CANCEL_ALL) : 0)
        case .pollAdd(let fd, let events, let multishot):
            if multishot {
                io_uring_prep_poll_multishot(sqe, fd, events)
            } else {
                io_uring_prep_poll_add(sqe, fd, events)
            }
        }
    }

    private static func timespec(_ duration: Duration) -> __kernel_timespec {
        let (seconds, attoseconds) = duration.components
        return __kernel_timespec(tv_sec: max(0, seconds), tv_nsec: max(0, attoseconds / 1_000_000_000))
    }

    /// Hands every queued operation to the kernel without waiting.
    @discardableResult
    public func submit() throws(IOError) -> Int {
        if simulator != nil { return 0 }
        let submitted = io_uring_submit(ring)
        guard submitted >= 0 else { throw IOError(.enter, result: submitted) }
        return Int(submitted)
    }

    /// Submits what is queued and waits until at least `minimumCompletions` completions are ready or
    /// `timeout` passes (nil: no limit), or a wake-up arrives from another thread. One system call.
    public func submitAndWait(minimumCompletions: Int = 1, timeout: Duration? = nil) throws(IOError) {
        if let simulator {
            simulator.wait(minimumCompletions: minimumCompletions, timeout: timeout)
            return
        }
        try armWake()
        let result: Int32
        if minimumCompletions == 0 {
            result = io_uring_submit(ring)
            if result >= 0 && features.contains(.deferredTaskRun) {
                // Deferred task work runs only when asked; collect whatever is ready now.
                let events = io_uring_get_events(ring)
                guard events >= 0 else { throw IOError(.enter, result: events) }
            }
        } else if let timeout {
            var spec = Self.timespec(timeout)
            var completion: UnsafeMutablePointer<io_uring_cqe>? = nil
            result = io_uring_submit_and_wait_timeout(
                ring, &completion, UInt32(minimumCompletions), &spec, nil)
        } else {
            result = io_uring_submit_and_wait(ring, UInt32(minimumCompletions))
        }
        // A timeout or a signal ends the wait early; neither is a failure of anything submitted.
        guard result >= 0 || result == -ETIME || result == -EINTR else {
            throw IOError(.enter, result: result)
        }
    }

    /// Calls `body` with every ready completion, oldest first, and returns how many there were.
    /// Wake-ups from other threads are consumed here and not passed on.
    @discardableResult
    public func drain(_ body: (Completion) throws -> Void) rethrows -> Int {
        if let simulator { return try drainSimulated(simulator, body) }
        var handled = 0
        while true {
            let count = io_uring_peek_batch_cqe(ring, completionBatch, completionBatchSize)
            if count == 0 { return handled }
            defer { io_uring_cq_advance(ring, count) }
            for i in 0..<Int(count) {
                let cqe = completionBatch[i]!.pointee
                if cqe.flags & IORING_CQE_F_MORE == 0 { operationsInFlight -= 1 }
                let completion = Completion(
                    token: CompletionToken(rawValue: cqe.user_data), result: cqe.res, flags: cqe.flags)
                if completion.token.kind == .wake {
                    wakeArmed = false
                    continue
                }
                handled += 1
                try body(completion)
            }
        }
    }

    private func drainSimulated(
        _ simulator: any RingSimulator, _ body: (Completion) throws -> Void
    ) rethrows -> Int {
        var handled = 0
        while true {
            simulator.takeCompletions(into: &simulatedCompletions)
            if simulatedCompletions.isEmpty { return handled }
            let batch = simulatedCompletions
            simulatedCompletions.removeAll(keepingCapacity: true)
            for completion in batch {
                if !completion.hasMore { operationsInFlight -= 1 }
                handled += 1
                try body(completion)
            }
        }
    }

    /// Ends a connection both ways (`shutdown(2)`): its pending operations complete.
    public func shutdown(socket fd: Int32) {
        if let simulator {
            simulator.shutdown(socket: fd)
        } else {
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    // MARK: Cross-thread wake-up

    /// A handle other threads use to interrupt `submitAndWait`. Valid while the ring lives.
    public var waker: RingWaker { RingWaker(fd: wakeFD) }

    private func armWake() throws(IOError) {
        guard !wakeArmed else { return }
        let buffer = UnsafeMutableRawBufferPointer(start: wakeValue, count: 8)
        let token = CompletionToken(slot: OperationSlot(index: 0, generation: 0), kind: .wake)
        try enqueue(.read(fd: wakeFD, into: buffer, offset: 0), token: token, flags: [])
        wakeArmed = true
    }

    // MARK: Registration

    /// Registers a buffer pool's slots as fixed buffers: slot `i` is buffer index `i` for
    /// `readFixed`/`writeFixed`, which then skip the per-I/O page pinning.
    public func registerBuffers(_ pool: BufferPool) throws(IOError) {
        if simulator != nil { return }
        precondition(pool.slotCount <= Int(UInt16.max), "at most 65535 fixed buffers")
        var vectors = (0..<pool.slotCount).map { i in
            iovec(iov_base: pool.baseAddress + i * pool.slotSizeBytes, iov_len: pool.slotSizeBytes)
        }
        let result = io_uring_register_buffers(ring, &vectors, UInt32(vectors.count))
        guard result == 0 else { throw IOError(.register, result: result) }
        registeredBufferCount = pool.slotCount
    }

    /// Removes the registered buffers.
    public func unregisterBuffers() throws(IOError) {
        if simulator != nil { return }
        guard registeredBufferCount > 0 else { return }
        let result = io_uring_unregister_buffers(ring)
        guard result == 0 else { throw IOError(.register, result: result) }
        registeredBufferCount = 0
    }

    /// Creates an empty registered file table with `count` entries.
    public func registerFiles(count: Int) throws(IOError) {
        if simulator != nil { return }
        let result = io_uring_register_files_sparse(ring, UInt32(count))
        guard result == 0 else { throw IOError(.register, result: result) }
    }

    /// Puts `fd` at `index` of the registered file table (-1 clears the entry). The table holds its
    /// own reference: the caller may close `fd` afterwards.
    public func setRegisteredFile(_ fd: Int32, at index: Int) throws(IOError) {
        if simulator != nil { return }
        var descriptor = fd
        let result = io_uring_register_files_update(ring, UInt32(index), &descriptor, 1)
        guard result >= 0 else { throw IOError(.register, result: result) }
    }

    func registerBufferRing(_ registration: inout io_uring_buf_reg) -> Int32 {
        io_uring_register_buf_ring(ring, &registration, 0)
    }

    func unregisterBufferRing(group: UInt16) {
        _ = io_uring_unregister_buf_ring(ring, Int32(group))
    }
}

/// Interrupts a ring's wait from any thread.
public struct RingWaker: Sendable {
    let fd: Int32

    /// Makes the ring's current or next `submitAndWait` return. Wakes coalesce.
    public func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }
}

private func >= (a: (Int, Int), b: (Int, Int)) -> Bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 >= b.1)
}
