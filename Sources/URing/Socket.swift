import CLibUring
import Glibc

/// A failed direct system call (set-up work done outside the ring), naming the call.
public struct SyscallError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Errno

    public init(_ call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// The current thread's errno after a failed call.
    static func last(_ call: String) -> SyscallError {
        SyscallError(call, errno: Errno(rawValue: Glibc.errno))
    }

    public var description: String { "\(call) failed: \(errno)" }
}

/// An IPv4 or IPv6 socket address, stored inline.
public enum SocketAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4(address: UInt32, port: UInt16)
    case ipv6(address: [UInt8], port: UInt16)

    /// Parses a numeric address (`127.0.0.1`, `::1`); no name resolution.
    public init?(host: String, port: UInt16) {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            self = .ipv4(address: UInt32(bigEndian: v4.s_addr), port: port)
            return
        }
        var v6 = in6_addr()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            self = .ipv6(address: withUnsafeBytes(of: v6) { Array($0) }, port: port)
            return
        }
        return nil
    }

    /// Parses `HOST:PORT` or `[HOST]:PORT` with a numeric host.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        self.init(host: String(text[..<colon]), port: port)
    }

    public var port: UInt16 {
        switch self {
        case .ipv4(_, let port), .ipv6(_, let port): port
        }
    }

    public var family: Int32 {
        switch self {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        }
    }

    /// The same address with another port.
    public func with(port: UInt16) -> SocketAddress {
        switch self {
        case .ipv4(let address, _): .ipv4(address: address, port: port)
        case .ipv6(let address, _): .ipv6(address: address, port: port)
        }
    }

    public var description: String {
        switch self {
        case .ipv4(let address, let port):
            return "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff):\(port)"
        case .ipv6(let address, let port):
            var raw = in6_addr()
            withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: address) }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
            return
                "[\(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))]:\(port)"
        }
    }

    /// Calls `body` with the address as a `sockaddr` and its length, for direct system calls.
    public func withSocketAddress<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var storage = sockaddr_storage()
        let length = write(to: &storage)
        return try withUnsafePointer(to: &storage) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    /// Writes the address as a `sockaddr` into `storage`, returning its length.
    func write(to storage: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        storage.initialize(to: sockaddr_storage())
        switch self {
        case .ipv4(let address, let port):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr = in_addr(s_addr: address.bigEndian)
            UnsafeMutableRawPointer(storage).storeBytes(of: sin, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .ipv6(let address, let port):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: address.prefix(16)) }
            UnsafeMutableRawPointer(storage).storeBytes(of: sin6, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Reads a `sockaddr` of family AF_INET or AF_INET6.
    init?(reading storage: UnsafePointer<sockaddr_storage>) {
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            let sin = UnsafeRawPointer(storage).load(as: sockaddr_in.self)
            self = .ipv4(
                address: UInt32(bigEndian: sin.sin_addr.s_addr), port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            let sin6 = UnsafeRawPointer(storage).load(as: sockaddr_in6.self)
            self = .ipv6(
                address: withUnsafeBytes(of: sin6.sin6_addr) { Array($0) },
                port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }
}

/// Socket set-up done with plain system calls: it happens once per listener or connection, not per byte.
public enum Socket {
    /// A new TCP socket (close-on-exec) for `family`.
    public static func makeTCP(family: Int32) throws(SyscallError) -> Int32 {
        let fd = Glibc.socket(family, potluck_sock_stream() | potluck_sock_cloexec(), 0)
        guard fd >= 0 else { throw .last("socket") }
        return fd
    }

    /// A connected pair of Unix stream sockets.
    public static func makeStreamPair() throws(SyscallError) -> (Int32, Int32) {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, potluck_sock_stream() | potluck_sock_cloexec(), 0, &pair) == 0 else {
            throw .last("socketpair")
        }
        return (pair[0], pair[1])
    }

    /// A TCP socket listening on `address` (port 0 picks a free port; see `localAddress`).
    public static func listenTCP(
        on address: SocketAddress, backlog: Int32 = 1024
    ) throws(SyscallError) -> Int32 {
        let fd = try makeTCP(family: address.family)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length = address.write(to: &storage)
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let error = SyscallError.last("bind \(address)")
            Glibc.close(fd)
            throw error
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = SyscallError.last("listen")
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Connects with a blocking call (set-up and baselines; the data path connects through the ring).
    public static func connectBlocking(_ fd: Int32, to address: SocketAddress) throws(SyscallError) {
        let result = address.withSocketAddress { Glibc.connect(fd, $0, $1) }
        guard result == 0 else { throw .last("connect \(address)") }
    }

    /// Accepts one connection with a blocking call.
    public static func acceptBlocking(_ listener: Int32) throws(SyscallError) -> Int32 {
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw .last("accept") }
        return fd
    }

    /// The address a socket is bound to.
    public static func localAddress(of fd: Int32) throws(SyscallError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else { throw .last("getsockname") }
        guard let address = SocketAddress(reading: &storage) else {
            throw SyscallError("getsockname", errno: .addressFamilyNotSupported)
        }
        return address
    }

    /// The address of a connected socket's peer.
    public static func peerAddress(of fd: Int32) throws(SyscallError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard ok == 0 else { throw .last("getpeername") }
        guard let address = SocketAddress(reading: &storage) else {
            throw SyscallError("getpeername", errno: .addressFamilyNotSupported)
        }
        return address
    }

    /// Disables Nagle's algorithm: requests are small and latency-bound.
    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets the kernel's send and receive buffer sizes.
    public static func setBufferSizes(_ fd: Int32, sendBytes: Int32, receiveBytes: Int32) {
        var send = sendBytes
        var receive = receiveBytes
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive, socklen_t(MemoryLayout<Int32>.size))
    }
}
