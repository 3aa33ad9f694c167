/// The operations a `Ring` submits. Carried in every completion's token, so an error names its call.
public enum OperationKind: UInt8, Sendable, CustomStringConvertible {
    case nop = 1
    case accept
    case connect
    case receive
    case send
    case sendZeroCopy
    case read
    case write
    case readFixed
    case writeFixed
    case fsync
    case fdatasync
    case openat
    case close
    case statx
    case fallocate
    case timeout
    case linkTimeout
    case cancel
    case pollAdd
    case wake
    /// Not an operation: `io_uring_enter` itself, when submitting or waiting fails.
    case enter
    /// Not an operation: `io_uring_register`, when registering buffers, files or buffer rings fails.
    case register
    case sendMessage
    case receiveMessage
    case renameat
    case unlinkat

    public var description: String {
        switch self {
        case .nop: "nop"
        case .accept: "accept"
        case .connect: "connect"
        case .receive: "recv"
        case .send: "send"
        case .sendMessage: "sendmsg"
        case .receiveMessage: "recvmsg"
        case .sendZeroCopy: "send_zc"
        case .read: "read"
        case .write: "write"
        case .readFixed: "read_fixed"
        case .writeFixed: "write_fixed"
        case .fsync: "fsync"
        case .fdatasync: "fdatasync"
        case .openat: "openat"
        case .close: "close"
        case .statx: "statx"
        case .fallocate: "fallocate"
        case .timeout: "timeout"
        case .linkTimeout: "link_timeout"
        case .cancel: "async_cancel"
        case .pollAdd: "poll_add"
        case .wake: "wake"
        case .enter: "io_uring_enter"
        case .register: "io_uring_register"
        case .renameat: "renameat"
        case .unlinkat: "unlinkat"
        }
    }
}

/// Names the owner of an operation: which user of the ring (the tenant: a torrent on a shared reactor,
/// or 0 for the reactor itself), which subsystem of that user (so one reactor can route completions to
/// peers, storage or trackers), a slot in that subsystem's table, and that slot's generation.
///
/// A slot is reused after its operation completes; the generation tells a late completion (say, of a
/// cancelled operation) apart from one for the slot's new owner.
public struct OperationSlot: Hashable, Sendable {
    /// Slot indices fit in 16 bits of the token: a table holds at most this many slots.
    public static let maximumIndex: UInt32 = 0xffff

    public let owner: UInt8
    public let tenant: UInt16
    public let index: UInt32
    public let generation: UInt16

    public init(owner: UInt8 = 0, tenant: UInt16 = 0, index: UInt32, generation: UInt16) {
        precondition(index <= Self.maximumIndex, "operation slot index beyond 16 bits")
        self.owner = owner
        self.tenant = tenant
        self.index = index
        self.generation = generation
    }
}

/// The 64-bit `user_data` of a submission: slot index (16 bits), generation (16), tenant (16), operation
/// kind (8), owner (8).
///
/// Packing everything into `user_data` is what lets completions be dispatched with no allocation and no
/// lookup beyond one array index per level (tenant, then subsystem slot).
public struct CompletionToken: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(slot: OperationSlot, kind: OperationKind) {
        rawValue =
            UInt64(slot.index) | UInt64(slot.generation) << 16 | UInt64(slot.tenant) << 32
            | UInt64(kind.rawValue) << 48 | UInt64(slot.owner) << 56
    }

    public var slot: OperationSlot {
        OperationSlot(
            owner: UInt8(truncatingIfNeeded: rawValue >> 56),
            tenant: UInt16(truncatingIfNeeded: rawValue >> 32),
            index: UInt32(UInt16(truncatingIfNeeded: rawValue)),
            generation: UInt16(truncatingIfNeeded: rawValue >> 16))
    }

    /// The operation, or nil for a `user_data` the ring did not make.
    public var kind: OperationKind? { OperationKind(rawValue: UInt8(truncatingIfNeeded: rawValue >> 48)) }

    public var description: String {
        "\(kind.map(String.init(describing:)) ?? "?")#\(slot.tenant)/\(slot.owner):\(slot.index).\(slot.generation)"
    }
}

/// A table of operation slots, each holding the caller's context for one in-flight operation.
///
/// Invariants: a slot is either free or holds a context; each acquire bumps the slot's generation, so a
/// token minted for an earlier owner never matches (`context(for:)` returns nil: the completion is stale).
/// The table starts small and doubles up to its capacity as operations pile up (thousands of torrents
/// at rest on one reactor each hold one), so it allocates only while growing.
public struct OperationTable<Context> {
    /// Stamped on every slot this table hands out.
    public let owner: UInt8
    public let tenant: UInt16
    /// The most slots the table grows to.
    public let capacity: Int
    private var contexts: [Context?] = []
    private var generations: [UInt16] = []
    private var freeIndices: [UInt32] = []

    /// `capacity` is below `OperationSlot.maximumIndex`, which stays free for the owner's own use.
    public init(capacity: Int, owner: UInt8 = 0, tenant: UInt16 = 0) {
        precondition(
            capacity > 0 && capacity < Int(OperationSlot.maximumIndex),
            "operation table capacity out of range")
        self.owner = owner
        self.tenant = tenant
        self.capacity = capacity
        // Nothing until the first operation: thousands of torrents at rest hold a table each.
    }

    public var inUseCount: Int { contexts.count - freeIndices.count }

    private mutating func grow(to count: Int) {
        let old = contexts.count
        contexts.append(contentsOf: repeatElement(nil, count: count - old))
        generations.append(contentsOf: repeatElement(0, count: count - old))
        // Low indices first.
        freeIndices.insert(contentsOf: (UInt32(old)..<UInt32(count)).reversed(), at: 0)
    }

    /// Takes a free slot for `context`, or nil when every slot is in flight (the caller waits).
    public mutating func acquire(_ context: Context) -> OperationSlot? {
        if freeIndices.isEmpty && contexts.count < capacity {
            grow(to: min(capacity, max(8, 2 * contexts.count)))
        }
        guard let index = freeIndices.popLast() else { return nil }
        let i = Int(index)
        generations[i] &+= 1
        contexts[i] = context
        return OperationSlot(owner: owner, tenant: tenant, index: index, generation: generations[i])
    }

    /// The context of a live slot, or nil when the slot was released or reused since (a stale token).
    public func context(for slot: OperationSlot) -> Context? {
        let i = Int(slot.index)
        guard slot.owner == owner, slot.tenant == tenant, i < contexts.count,
            generations[i] == slot.generation
        else { return nil }
        return contexts[i]
    }

    /// Replaces the context of a live slot.
    public mutating func update(_ slot: OperationSlot, to context: Context) {
        precondition(self.context(for: slot) != nil, "updating a slot that is not in flight")
        contexts[Int(slot.index)] = context
    }

    /// Frees a live slot; a stale or already freed slot is ignored and reported as false.
    @discardableResult
    public mutating func release(_ slot: OperationSlot) -> Bool {
        guard context(for: slot) != nil else { return false }
        contexts[Int(slot.index)] = nil
        freeIndices.append(slot.index)
        return true
    }
}
