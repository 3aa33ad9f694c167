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

    public var description: String {
        switch self {
        case .nop: "nop"
        case .accept: "accept"
        case .connect: "connect"
        case .receive: "recv"
        case .send: "send"
        case .sendMessage: "sendmsg"
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
        }
    }
}

/// Names the owner of an operation: which subsystem (so one reactor can route completions to peers,
/// storage or trackers), a slot in that subsystem's table, and that slot's generation.
///
/// A slot is reused after its operation completes; the generation tells a late completion (say, of a
/// cancelled operation) apart from one for the slot's new owner.
public struct OperationSlot: Hashable, Sendable {
    public let owner: UInt8
    public let index: UInt32
    public let generation: UInt16

    public init(owner: UInt8 = 0, index: UInt32, generation: UInt16) {
        self.owner = owner
        self.index = index
        self.generation = generation
    }
}

/// The 64-bit `user_data` of a submission: slot index (32 bits), generation (16), operation kind (8),
/// owner (8).
///
/// Packing everything into `user_data` is what lets completions be dispatched with no allocation and no
/// lookup beyond one array index.
public struct CompletionToken: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(slot: OperationSlot, kind: OperationKind) {
        rawValue =
            UInt64(slot.index) | UInt64(slot.generation) << 32 | UInt64(kind.rawValue) << 48
            | UInt64(slot.owner) << 56
    }

    public var slot: OperationSlot {
        OperationSlot(
            owner: UInt8(truncatingIfNeeded: rawValue >> 56),
            index: UInt32(truncatingIfNeeded: rawValue),
            generation: UInt16(truncatingIfNeeded: rawValue >> 32))
    }

    /// The operation, or nil for a `user_data` the ring did not make.
    public var kind: OperationKind? { OperationKind(rawValue: UInt8(truncatingIfNeeded: rawValue >> 48)) }

    public var description: String {
        "\(kind.map(String.init(describing:)) ?? "?")#\(slot.owner):\(slot.index).\(slot.generation)"
    }
}

/// A fixed table of operation slots, each holding the caller's context for one in-flight operation.
///
/// Invariants: a slot is either free or holds a context; each acquire bumps the slot's generation, so a
/// token minted for an earlier owner never matches (`context(for:)` returns nil: the completion is stale).
/// All storage is allocated at start-up.
public struct OperationTable<Context> {
    /// Stamped on every slot this table hands out.
    public let owner: UInt8
    private var contexts: [Context?]
    private var generations: [UInt16]
    private var freeIndices: [UInt32]

    public init(capacity: Int, owner: UInt8 = 0) {
        precondition(capacity > 0 && capacity <= Int(UInt32.max), "operation table capacity out of range")
        self.owner = owner
        contexts = Array(repeating: nil, count: capacity)
        generations = Array(repeating: 0, count: capacity)
        freeIndices = (0..<UInt32(capacity)).reversed()
    }

    public var capacity: Int { contexts.count }
    public var inUseCount: Int { contexts.count - freeIndices.count }

    /// Takes a free slot for `context`, or nil when every slot is in flight (the caller waits).
    public mutating func acquire(_ context: Context) -> OperationSlot? {
        guard let index = freeIndices.popLast() else { return nil }
        let i = Int(index)
        generations[i] &+= 1
        contexts[i] = context
        return OperationSlot(owner: owner, index: index, generation: generations[i])
    }

    /// The context of a live slot, or nil when the slot was released or reused since (a stale token).
    public func context(for slot: OperationSlot) -> Context? {
        let i = Int(slot.index)
        guard slot.owner == owner, i < contexts.count, generations[i] == slot.generation else { return nil }
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
