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
        let fd = Glibc.socket(AF_INET, potluck_sock_dgram() | potluck_sock_cloexec(), 0)
        guard fd >= 0 else { throw .last("socket") }
        do throws(SyscallError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), "SO_REUSEADDR")
            try setOption(fd, SOL_SOCKET, SO_REUSEPORT, Int32(1), "SO_REUSEPORT")
            let any = SocketAddress.ipv4(address: 0, port: port)
            guard any.withSocketAddress({ Glibc.bind(fd, $0, $1) }) == 0 else {
                throw .last("bind \(any) (UDP)")
            }
            let interface = in_addr(s_addr: interfaceAddress.bigEndian)
            let membership = ip_mreq(
                imr_multiaddr: in_addr(s_addr: groupAddress.bigEndian), imr_interface: interface)
            try setOption(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, membership, "IP_ADD_MEMBERSHIP \(group)")
            if interfaceAddress != 0 {
                try setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, interface, "IP_MULTICAST_IF")
            }
            try setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, Int32(1), "IP_MULTICAST_LOOP")
            try setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, Int32(1), "IP_MULTICAST_TTL")
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
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
