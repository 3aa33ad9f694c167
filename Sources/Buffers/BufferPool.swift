#if canImport(Glibc)
    import Glibc
#endif

/// A fixed pool of equal-size, page-aligned buffers, allocated once at start-up.
///
/// The pool is the memory budget of the data path: blocks are received into its slots, hashed in place
/// and written to disk from them. Its memory can be registered with io_uring for fixed-buffer I/O.
///
/// Invariants:
/// - Every slot is in exactly one state: free, leased (owned by the caller) or lent (handed to another
///   thread, such as a hasher, that may read it until it gives it back).
/// - A slot is only leased out when free, and only released when leased: a lent slot can never be reused,
///   which is what keeps a buffer alive until its hash has completed.
/// - A `BufferSlot` carries the generation of its lease, so a stale handle is caught, not silently used.
///
/// The bookkeeping is owned by one thread (the reactor). Only the memory itself is shared.
public final class BufferPool: @unchecked Sendable {
    public enum SlotState: UInt8, Sendable {
        case free
        case leased
        case lent
    }

    /// The size of each slot in bytes.
    public let slotSizeBytes: Int
    /// How many slots the pool holds.
    public let slotCount: Int
    /// The start of the pool's memory: all slots, back to back.
    public let baseAddress: UnsafeMutableRawPointer

    private var states: [SlotState]
    private var generations: [UInt32]
    private var freeSlots: [Int32]

    /// Maps `slotCount` page-aligned slots of `slotSizeBytes` each. The memory is mapped rather than
    /// taken from malloc so that freeing the pool gives it back to the system at once (malloc keeps
    /// freed blocks below its adaptive mmap threshold, up to 32 MiB, in its heap); untouched slots cost
    /// no memory.
    public init(slotSizeBytes: Int, slotCount: Int) {
        precondition(slotSizeBytes > 0 && slotCount > 0, "a buffer pool needs at least one non-empty slot")
        precondition(slotCount <= Int(Int32.max), "slot indices are 32-bit")
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let rounded = (slotSizeBytes + pageSize - 1) / pageSize * pageSize
        self.slotSizeBytes = rounded
        self.slotCount = slotCount
        let (total, overflow) = rounded.multipliedReportingOverflow(by: slotCount)
        precondition(!overflow, "buffer pool size overflows")
        let mapped = mmap(
            nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        precondition(mapped != MAP_FAILED, "cannot map \(total) bytes for a buffer pool: errno \(errno)")
        self.baseAddress = mapped!
        self.states = Array(repeating: .free, count: slotCount)
        self.generations = Array(repeating: 0, count: slotCount)
        // Hand out low slots first: it keeps the touched memory compact.
        self.freeSlots = (0..<Int32(slotCount)).reversed()
    }

    deinit {
        munmap(baseAddress, totalBytes)
    }

    /// The total size of the pool in bytes.
    public var totalBytes: Int { slotSizeBytes * slotCount }

    /// How many slots are free now.
    public var freeCount: Int { freeSlots.count }

    /// Takes a free slot, or returns nil when the budget is spent (the caller applies back-pressure).
    public func lease() -> BufferSlot? {
        guard let index = freeSlots.popLast() else { return nil }
        let i = Int(index)
        precondition(states[i] == .free, "a slot on the free list must be free")
        states[i] = .leased
        generations[i] &+= 1
        return BufferSlot(index: index, generation: generations[i])
    }

    /// Gives a leased slot back to the pool.
    public func release(_ slot: BufferSlot) {
        check(slot, is: .leased, doing: "release")
        states[Int(slot.index)] = .free
        freeSlots.append(slot.index)
    }

    /// Marks a leased slot as lent to another thread: it cannot be released until `reclaim`.
    public func lend(_ slot: BufferSlot) {
        check(slot, is: .leased, doing: "lend")
        states[Int(slot.index)] = .lent
    }

    /// Takes back a slot lent to another thread; it is leased to the caller again.
    public func reclaim(_ slot: BufferSlot) {
        check(slot, is: .lent, doing: "reclaim")
        states[Int(slot.index)] = .leased
    }

    /// The state of the slot a handle names (for assertions and tests).
    public func state(of slot: BufferSlot) -> SlotState {
        precondition(slot.index >= 0 && Int(slot.index) < slotCount, "slot index out of range")
        return states[Int(slot.index)]
    }

    /// The memory of a slot. Valid as long as the pool lives; the slot's state says who may touch it.
    public func bytes(of slot: BufferSlot) -> UnsafeMutableRawBufferPointer {
        precondition(slot.index >= 0 && Int(slot.index) < slotCount, "slot index out of range")
        precondition(generations[Int(slot.index)] == slot.generation, "stale buffer slot handle")
        return UnsafeMutableRawBufferPointer(
            start: baseAddress + Int(slot.index) * slotSizeBytes, count: slotSizeBytes)
    }

    private func check(_ slot: BufferSlot, is expected: SlotState, doing action: StaticString) {
        precondition(slot.index >= 0 && Int(slot.index) < slotCount, "slot index out of range")
        let i = Int(slot.index)
        precondition(generations[i] == slot.generation, "stale buffer slot handle")
        precondition(states[i] == expected, "cannot \(action) a slot that is \(states[i])")
    }
}

/// A handle to one leased slot of a `BufferPool`.
public struct BufferSlot: Hashable, Sendable {
    public let index: Int32
    public let generation: UInt32
}
