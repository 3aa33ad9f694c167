import CLibUring
import Glibc

/// One request to the kernel. Buffers named here must stay valid until the operation completes; small
/// arguments (addresses, timeouts, paths) are copied by the ring and may be temporaries.
public enum Operation {
    case nop
    /// Accepts on a listening socket; multishot keeps accepting until cancelled or an error.
    case accept(fd: Int32, multishot: Bool)
    case connect(fd: Int32, address: SocketAddress)
    /// Receives into the caller's buffer.
    case receive(fd: Int32, into: UnsafeMutableRawBufferPointer)
    /// Receives into a buffer the kernel picks from a provided-buffer ring (see `ProvidedBufferRing`).
    case receiveProvided(fd: Int32, group: UInt16, multishot: Bool)
    case send(fd: Int32, bytes: UnsafeRawBufferPointer)
    /// Sends the ranges of `vector` as one stream (sendmsg with an iovec): a header and a payload from
    /// different buffers, without copying them together. `vector` must not change until completion.
    case sendMessage(fd: Int32, vector: SendVector)
    /// Sends one datagram to the address it names (sendmsg on an unconnected UDP socket).
    case sendDatagram(fd: Int32, Datagram)
    /// Receives one datagram and its source (recvmsg); the completion's result is its length.
    case receiveDatagram(fd: Int32, Datagram)
    /// A zero-copy send: a second completion (a notification) says when the buffer may be reused.
    case sendZeroCopy(fd: Int32, bytes: UnsafeRawBufferPointer)
    case read(fd: Int32, into: UnsafeMutableRawBufferPointer, offset: UInt64)
    case write(fd: Int32, bytes: UnsafeRawBufferPointer, offset: UInt64)
    /// Reads into registered memory (see `Ring.registerBuffers`); `bufferIndex` is the pool slot.
    case readFixed(fd: Int32, into: UnsafeMutableRawBufferPointer, offset: UInt64, bufferIndex: UInt16)
    case writeFixed(fd: Int32, bytes: UnsafeRawBufferPointer, offset: UInt64, bufferIndex: UInt16)
    case fsync(fd: Int32, dataOnly: Bool)
    case openat(directory: Int32, path: String, flags: Int32, mode: mode_t)
    case close(fd: Int32)
    /// `renameat2(from, to, flags)`: both paths relative to their directory descriptors.
    case renameat(fromDirectory: Int32, from: String, toDirectory: Int32, to: String, flags: UInt32)
    /// `unlinkat(path, flags)`; `AT_REMOVEDIR` removes an empty directory.
    case unlinkat(directory: Int32, path: String, flags: Int32)
    /// Writes into `into`, which must stay valid until completion.
    case statx(directory: Int32, path: String, flags: Int32, mask: UInt32, into: UnsafeMutablePointer<statx>)
    case fallocate(fd: Int32, mode: Int32, offset: UInt64, length: UInt64)
    /// Completes after `duration`, or earlier once `completionCount` other completions arrived (0: never).
    case timeout(Duration, completionCount: UInt32)
    /// Bounds the time of the operation submitted just before it with `.link`.
    case linkTimeout(Duration)
    /// Cancels the in-flight operation with `token` (every such operation if `all`).
    case cancel(CompletionToken, all: Bool)
    /// Waits for poll events on a descriptor.
    case pollAdd(fd: Int32, events: UInt32, multishot: Bool)

    var kind: OperationKind {
        switch self {
        case .nop: .nop
        case .accept: .accept
        case .connect: .connect
        case .receive, .receiveProvided: .receive
        case .send: .send
        case .sendMessage, .sendDatagram: .sendMessage
        case .receiveDatagram: .receiveMessage
        case .sendZeroCopy: .sendZeroCopy
        case .read: .read
        case .write: .write
        case .readFixed: .readFixed
        case .writeFixed: .writeFixed
        case .fsync(_, let dataOnly): dataOnly ? .fdatasync : .fsync
        case .openat: .openat
        case .close: .close
        case .renameat: .renameat
        case .unlinkat: .unlinkat
        case .statx: .statx
        case .fallocate: .fallocate
        case .timeout: .timeout
        case .linkTimeout: .linkTimeout
        case .cancel: .cancel
        case .pollAdd: .pollAdd
        }
    }
}

/// Flags for one submission (`IOSQE_*`).
public struct SubmissionFlags: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The descriptor is an index into the registered file table.
    public static let fixedFile = SubmissionFlags(rawValue: UInt8(1 << IOSQE_FIXED_FILE_BIT))
    /// The next submission starts only after this one succeeds (it is cancelled if this one fails).
    public static let link = SubmissionFlags(rawValue: UInt8(1 << IOSQE_IO_LINK_BIT))
    /// Like `link`, but the next one runs even if this one fails.
    public static let hardLink = SubmissionFlags(rawValue: UInt8(1 << IOSQE_IO_HARDLINK_BIT))
    /// Runs only after everything submitted before it completed.
    public static let drain = SubmissionFlags(rawValue: UInt8(1 << IOSQE_IO_DRAIN_BIT))
}

/// One completion: whose operation it was, the kernel's result and flags.
public struct Completion: Sendable {
    public let token: CompletionToken
    /// The kernel's result: a count or descriptor when `>= 0`, `-errno` otherwise.
    public let result: Int32
    public let flags: UInt32

    public init(token: CompletionToken, result: Int32, flags: UInt32) {
        self.token = token
        self.result = result
        self.flags = flags
    }

    public var slot: OperationSlot { token.slot }

    /// A multishot operation stays armed: more completions will come for the same token.
    public var hasMore: Bool { flags & IORING_CQE_F_MORE != 0 }

    /// The provided buffer that holds received data, if the kernel picked one.
    public var bufferID: UInt16? {
        flags & IORING_CQE_F_BUFFER != 0 ? UInt16(truncatingIfNeeded: flags >> IORING_CQE_BUFFER_SHIFT) : nil
    }

    /// A zero-copy send's notification that its buffer may be reused (its result is not a byte count).
    public var isNotification: Bool { flags & IORING_CQE_F_NOTIF != 0 }

    /// The result as a count or descriptor, or the failure as a typed error naming the operation.
    public func value() throws(IOError) -> Int {
        guard result >= 0 else { throw IOError(token.kind ?? .nop, result: result) }
        return Int(result)
    }
}
