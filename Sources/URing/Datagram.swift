import CLibUring
import CLinux
import Glibc

/// One UDP datagram's memory for the ring: its bytes, its peer's address and the `msghdr` that names
/// both, kept together so that they outlive the operation (sendmsg to, or recvmsg from, an unconnected
/// socket: one socket talks to every DHT node).
///
/// Invariants: while an operation on it is in flight, nothing here changes; `count` bytes of `bytes`
/// are the datagram (after a receive, the completion's result says how many arrived).
public final class Datagram {
    public let capacity: Int
    private let storage: UnsafeMutableRawBufferPointer
    private let vector: UnsafeMutablePointer<iovec>
    private let address: UnsafeMutablePointer<sockaddr_storage>
    let message: UnsafeMutablePointer<msghdr>
    public private(set) var count = 0

    public init(capacity: Int) {
        self.capacity = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
        vector = .allocate(capacity: 1)
        address = .allocate(capacity: 1)
        address.initialize(to: sockaddr_storage())
        message = .allocate(capacity: 1)
        message.initialize(to: msghdr())
    }

    deinit {
        storage.deallocate()
        vector.deallocate()
        address.deallocate()
        message.deallocate()
    }

    /// The datagram's bytes (what was set to send, or what the last receive brought once `received`).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }

    /// The peer: the destination set, or the source of the datagram received.
    public var peer: SocketAddress? { SocketAddress(reading: address) }

    /// Sets what to send and where; false when `payload` does not fit.
    public func set(_ payload: some Collection<UInt8>, to destination: SocketAddress) -> Bool {
        guard payload.count <= capacity else { return false }
        UnsafeMutableRawBufferPointer(rebasing: storage[..<payload.count]).copyBytes(from: payload)
        count = payload.count
        let length = destination.write(to: address)
        prepare(length: count, addressLength: length)
        return true
    }

    /// Readies the buffer for a receive of at most `capacity` bytes.
    func prepareReceive() {
        count = 0
        prepare(length: capacity, addressLength: socklen_t(MemoryLayout<sockaddr_storage>.size))
    }

    /// A receive completed with `result` bytes (a datagram longer than `capacity` was cut: see
    /// `wasTruncated`).
    public func received(_ result: Int32) {
        count = max(0, min(Int(result), capacity))
    }

    /// The last datagram received did not fit and was cut (MSG_TRUNC).
    public var wasTruncated: Bool { message.pointee.msg_flags & Int32(MSG_TRUNC) != 0 }

    private func prepare(length: Int, addressLength: socklen_t) {
        vector.pointee = iovec(iov_base: storage.baseAddress, iov_len: length)
        message.pointee = msghdr()
        message.pointee.msg_name = UnsafeMutableRawPointer(address)
        message.pointee.msg_namelen = addressLength
        message.pointee.msg_iov = vector
        message.pointee.msg_iovlen = 1
    }
}

extension Socket {
    /// A UDP socket (close-on-exec) bound to `address` (port 0: any free port).
    public static func bindUDP(on address: SocketAddress) throws(SyscallError) -> Int32 {
        let fd = Glibc.socket(address.family, potluck_sock_dgram() | potluck_sock_cloexec(), 0)
        guard fd >= 0 else { throw .last("socket") }
        if address.family == AF_INET6 {
            // One socket per family: an IPv6 one bound to `::` must not also take (or be refused) the
            // IPv4 port the other family's socket holds.
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let bound = address.withSocketAddress { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else {
            let error = SyscallError.last("bind \(address) (UDP)")
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Has the kernel queue ICMP errors (port unreachable and the like) for datagrams sent from `fd`, so
    /// that an unconnected socket learns which destination refused (see `takeQueuedError`).
    public static func queueErrors(_ fd: Int32, family: Int32) throws(SyscallError) {
        guard potluck_udp_queue_errors(fd, family == AF_INET6 ? 1 : 0) == 0 else {
            throw .last("setsockopt IP_RECVERR")
        }
    }

    /// The oldest error queued on `fd` and the destination it concerns; nil when none is queued. Never
    /// waits.
    public static func takeQueuedError(
        _ fd: Int32
    ) throws(SyscallError) -> (
        destination: SocketAddress, errno: Errno
    )? {
        var storage = sockaddr_storage()
        let result = potluck_udp_take_error(fd, &storage)
        guard result >= 0 else { throw .last("recvmsg MSG_ERRQUEUE") }
        guard result > 0, let destination = SocketAddress(reading: &storage) else { return nil }
        return (destination, Errno(rawValue: result))
    }
}
