import CLibUring
import Glibc

/// Receive buffers handed to the kernel through a shared ring (`IORING_REGISTER_PBUF_RING`).
///
/// With it, idle connections hold no receive memory: the kernel takes a buffer only when data arrives
/// and says which one in the completion. The caller parses the bytes in place and then recycles the
/// buffer. When every buffer is taken, receives end with `ENOBUFS` and must be re-armed after recycling.
///
/// The memory grows with use: the kernel is given `initialCount` buffers at first, and ``grow()``
/// gives it more (up to `bufferCount`) when they run out. The buffers' memory is mapped, not touched,
/// so buffers never handed out cost nothing: an idle process with thousands of torrents holds a few.
///
/// Invariants: `bufferCount` is a power of two; buffer `i` is `bufferSizeBytes` at
/// `buffers + i * bufferSizeBytes`; buffers `0..<providedCount` are each either in the kernel's ring or
/// held by the caller; the others were never handed out.
public final class ProvidedBufferRing {
    public let group: UInt16
    public let bufferCount: Int
    public let bufferSizeBytes: Int
    /// Buffers handed to the kernel so far.
    public private(set) var providedCount: Int

    // Strong: the registration must be undone before the ring goes away.
    private let ring: Ring
    private let ringMemory: UnsafeMutableRawPointer
    private let buffers: UnsafeMutableRawPointer
    private var pendingRecycles: Int32 = 0

    /// Registers a ring of `bufferCount` (a power of two, at most 32768) buffers of `bufferSizeBytes` as
    /// `group`, and hands the kernel the first `initialCount` (all by default).
    public init(
        ring: Ring, group: UInt16, bufferCount: Int, bufferSizeBytes: Int, initialCount: Int? = nil
    ) throws(IOError) {
        precondition(
            bufferCount > 0 && bufferCount <= 32768 && bufferCount & (bufferCount - 1) == 0,
            "a provided-buffer ring holds a power of two of at most 32768 buffers")
        precondition(
            ring.features.contains(.providedBufferRing), "check Ring.features before using buffer rings")
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let ringBytes = bufferCount * MemoryLayout<io_uring_buf>.stride
        let ringMemory = UnsafeMutableRawPointer.allocate(byteCount: ringBytes, alignment: pageSize)
        ringMemory.initializeMemory(as: UInt8.self, repeating: 0, count: ringBytes)
        // Mapped, so that pages of buffers never handed out are never touched.
        let mapped = mmap(
            nil, bufferCount * bufferSizeBytes, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            ringMemory.deallocate()
            throw IOError(.register, result: -errno)
        }
        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: ringMemory))
        registration.ring_entries = UInt32(bufferCount)
        registration.bgid = group
        let result = ring.registerBufferRing(&registration)
        guard result == 0 else {
            // Before any stored property is set: `deinit` (which would free this again) does not run.
            ringMemory.deallocate()
            munmap(mapped, bufferCount * bufferSizeBytes)
            throw IOError(.register, result: result)
        }
        self.ring = ring
        self.group = group
        self.bufferCount = bufferCount
        self.bufferSizeBytes = bufferSizeBytes
        self.ringMemory = ringMemory
        buffers = mapped
        providedCount = 0
        io_uring_buf_ring_init(ringMemory.assumingMemoryBound(to: io_uring_buf_ring.self))
        provide(upTo: min(bufferCount, max(1, initialCount ?? bufferCount)))
    }

    deinit {
        ring.unregisterBufferRing(group: group)
        ringMemory.deallocate()
        munmap(buffers, bufferCount * bufferSizeBytes)
    }

    /// Hands the kernel as many more buffers as it has (doubling), up to `bufferCount`: the caller saw
    /// receives fail for want of one. False when every buffer is already handed out.
    @discardableResult
    public func grow() -> Bool {
        guard providedCount < bufferCount else { return false }
        provide(upTo: min(bufferCount, 2 * providedCount))
        return true
    }

    private func provide(upTo count: Int) {
        publishRecycled()
        let bufferRing = ringMemory.assumingMemoryBound(to: io_uring_buf_ring.self)
        let mask = io_uring_buf_ring_mask(UInt32(bufferCount))
        for (offset, id) in (providedCount..<count).enumerated() {
            io_uring_buf_ring_add(
                bufferRing, buffers + id * bufferSizeBytes, UInt32(bufferSizeBytes), UInt16(id), mask,
                Int32(offset))
        }
        io_uring_buf_ring_advance(bufferRing, Int32(count - providedCount))
        providedCount = count
    }

    /// The first `count` bytes of buffer `id`, as filled by the kernel.
    public func bytes(_ id: UInt16, count: Int) -> UnsafeRawBufferPointer {
        precondition(Int(id) < providedCount && count <= bufferSizeBytes, "buffer \(id) out of range")
        return UnsafeRawBufferPointer(start: buffers + Int(id) * bufferSizeBytes, count: count)
    }

    /// Gives buffer `id` back to the kernel. Recycles are published together by `publishRecycled`
    /// (or the next `recycle` batch), so that a burst costs one memory barrier.
    public func recycle(_ id: UInt16) {
        precondition(Int(id) < providedCount, "buffer \(id) out of range")
        let bufferRing = ringMemory.assumingMemoryBound(to: io_uring_buf_ring.self)
        io_uring_buf_ring_add(
            bufferRing, buffers + Int(id) * bufferSizeBytes, UInt32(bufferSizeBytes), id,
            io_uring_buf_ring_mask(UInt32(bufferCount)), pendingRecycles)
        pendingRecycles += 1
    }

    /// Makes recycled buffers visible to the kernel.
    public func publishRecycled() {
        guard pendingRecycles > 0 else { return }
        io_uring_buf_ring_advance(ringMemory.assumingMemoryBound(to: io_uring_buf_ring.self), pendingRecycles)
        pendingRecycles = 0
    }
}
