import CLibUring
import Glibc

extension Socket {
    /// A UDP socket on `group`'s port on every address, joined to the IPv4 multicast `group` on the
    /// interface that has `interfaceAddress` (host byte order), which also sends; with 0, on the
    /// interface the routing table picks for the group: how BEP 14 clients hear one another. The port is
    /// shared (SO_REUSEADDR, SO_REUSEPORT) so that every client on a host can bind it and each gets the
    /// group's datagrams; ours loop back to the host's other clients (IP_MULTICAST_LOOP, filtered by
    /// the receiver) and go no further than the link (TTL 1).
    public static func joinMulticastUDP(
        group: SocketAddress, interfaceAddress: UInt32 = 0
    ) throws(SyscallError) -> Int32 {
        guard case .ipv4(let groupAddress, let port) = group else {
            throw SyscallError("IP_ADD_MEMBERSHIP \(group)", errno: .addressFamilyNotSupported)
        }
        return try sharedMulticastSocket(.ipv4(address: 0, port: port)) { fd throws(SyscallError) in
            let interface = in_addr(s_addr: interfaceAddress.bigEndian)
            let membership = ip_mreq(
                imr_multiaddr: in_addr(s_addr: groupAddress.bigEndian), imr_interface: interface)
            try setOption(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, membership, "IP_ADD_MEMBERSHIP \(group)")
            if interfaceAddress != 0 {
                try setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, interface, "IP_MULTICAST_IF")
                // Only the group on this interface: a socket per interface hears each datagram once.
                try setOption(fd, Int32(IPPROTO_IP), ipMulticastAll, Int32(0), "IP_MULTICAST_ALL")
            }
            try setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, Int32(1), "IP_MULTICAST_LOOP")
            try setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, Int32(1), "IP_MULTICAST_TTL")
        }
    }

    /// The same for an IPv6 multicast `group` (16 bytes) on `port`: a v6-only socket on every IPv6
    /// address, joined (and sending) on the interface `interfaceIndex`, or with 0 the one the routing
    /// table picks; looped back to the host's other clients, hop limit 1.
    public static func joinMulticastUDP6(
        group: [UInt8], port: UInt16, interfaceIndex: UInt32 = 0
    ) throws(SyscallError) -> Int32 {
        guard group.count == 16 else {
            throw SyscallError("IPV6_JOIN_GROUP", errno: .invalidArgument)
        }
        let any = SocketAddress.ipv6(address: Array(repeating: 0, count: 16), port: port)
        return try sharedMulticastSocket(any) { fd throws(SyscallError) in
            var groupAddress = in6_addr()
            withUnsafeMutableBytes(of: &groupAddress) { $0.copyBytes(from: group) }
            var membership = ipv6_mreq(ipv6mr_multiaddr: groupAddress, ipv6mr_interface: interfaceIndex)
            // Not `setOption`: the address's union keeps the struct from being `BitwiseCopyable`.
            let joined = withUnsafeBytes(of: &membership) {
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_ADD_MEMBERSHIP, $0.baseAddress, socklen_t($0.count))
            }
            guard joined == 0 else { throw .last("setsockopt IPV6_ADD_MEMBERSHIP") }
            if interfaceIndex != 0 {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, interfaceIndex, "IPV6_MULTICAST_IF")
            }
            try setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, UInt32(1), "IPV6_MULTICAST_LOOP")
            try setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, Int32(1), "IPV6_MULTICAST_HOPS")
        }
    }

    /// A UDP socket bound to `any` (every address of its family, v6-only for IPv6), its port shared with
    /// the host's other clients (SO_REUSEADDR, SO_REUSEPORT), then `join`ed to a group; closed again if
    /// anything fails.
    private static func sharedMulticastSocket(
        _ any: SocketAddress, join: (Int32) throws(SyscallError) -> Void
    ) throws(SyscallError) -> Int32 {
        let fd = Glibc.socket(any.family, potluck_sock_dgram() | potluck_sock_cloexec(), 0)
        guard fd >= 0 else { throw .last("socket") }
        do throws(SyscallError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), "SO_REUSEADDR")
            try setOption(fd, SOL_SOCKET, SO_REUSEPORT, Int32(1), "SO_REUSEPORT")
            if any.family == AF_INET6 {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, Int32(1), "IPV6_V6ONLY")
            }
            guard any.withSocketAddress({ Glibc.bind(fd, $0, $1) }) == 0 else {
                throw .last("bind \(any) (UDP)")
            }
            try join(fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// `IP_MULTICAST_ALL` (linux/in.h), which Glibc's module leaves out.
    private static let ipMulticastAll: Int32 = 49

    /// The first IPv4 address (host byte order) of each interface that is up, takes multicast and is
    /// not a loopback, in the order the kernel lists them: where a LAN's multicast can be heard.
    public static func ipv4MulticastInterfaceAddresses() -> [UInt32] {
        var found: [UInt32] = []
        var names: Set<String> = []
        forEachInterfaceAddress(family: AF_INET) { entry, address in
            let flags = entry.ifa_flags
            guard flags & UInt32(IFF_MULTICAST) != 0, flags & UInt32(IFF_LOOPBACK) == 0,
                names.insert(String(cString: entry.ifa_name)).inserted
            else { return }
            found.append(UInt32(bigEndian: address.load(as: sockaddr_in.self).sin_addr.s_addr))
        }
        return found
    }

    /// The IPv6 addresses (16 bytes each) of this host's interfaces that are up, with each interface's
    /// index, in the order the kernel lists them.
    public static func ipv6InterfaceAddresses() -> [(address: [UInt8], interfaceIndex: UInt32)] {
        var found: [(address: [UInt8], interfaceIndex: UInt32)] = []
        forEachInterfaceAddress(family: AF_INET6) { entry, address in
            let bytes = withUnsafeBytes(of: address.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            found.append((bytes, if_nametoindex(entry.ifa_name)))
        }
        return found
    }

    /// Calls `body` with each address of `family` on an interface that is up, in the kernel's order.
    private static func forEachInterfaceAddress(
        family: Int32, _ body: (ifaddrs, UnsafeRawPointer) -> Void
    ) {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            entry = current.pointee.ifa_next
            guard let address = current.pointee.ifa_addr, Int32(address.pointee.sa_family) == family,
                current.pointee.ifa_flags & UInt32(IFF_UP) != 0
            else { continue }
            body(current.pointee, UnsafeRawPointer(address))
        }
    }

    private static func setOption<Value: BitwiseCopyable>(
        _ fd: Int32, _ level: Int32, _ name: Int32, _ value: Value, _ call: String
    ) throws(SyscallError) {
        let result = withUnsafeBytes(of: value) { bytes in
            setsockopt(fd, level, name, bytes.baseAddress, socklen_t(bytes.count))
        }
        guard result == 0 else {
            throw .last("setsockopt \(call)")
        }
    }
}
