import Glibc
import LocalDiscovery
import URing

extension Engine {
    /// Joins the LSD multicast groups of the families the engine takes connections on and places a
    /// service for each socket on the first reactor. Listening on one address, it joins and announces
    /// on that address's interface: the peers it tells must see that address as the source (an
    /// interface may have several). Listening on every IPv4 address, or on none, it joins and announces
    /// on every interface that takes multicast, a socket each, so that a host on two LANs is found on
    /// both (with none, the routing table picks); for IPv6 on every address (`[::]`, which takes IPv4
    /// connections too) the routing table picks. Nil (logged) when no socket can be had.
    static func startLocalDiscovery(
        listening: SocketAddress?, on inbox: ReactorInbox, log: @escaping @Sendable (String) -> Void
    ) -> LocalDiscoveryHandle? {
        var sockets: [(fd: Int32, isIPv6: Bool, via: String)] = []
        let anyIPv6 = Array(repeating: UInt8(0), count: 16)
        switch listening {
        case .ipv6(let address, _):
            if address == anyIPv6 { sockets += joinEveryIPv4Interface(log: log).map { ($0, false, $1) } }
            let index =
                address == anyIPv6
                ? 0 : Socket.ipv6InterfaceAddresses().first { $0.address == address }?.interfaceIndex
            if let index {
                do {
                    let fd = try Socket.joinMulticastUDP6(
                        group: LocalDiscoveryAnnounce.ipv6GroupAddress,
                        port: LocalDiscoveryAnnounce.groupPort,
                        interfaceIndex: index)
                    sockets.append((fd, true, ""))
                } catch {
                    log("lsd: off for IPv6: \(error)")
                }
            } else {
                log("lsd: off for IPv6: no interface has \(listening.map { "\($0)" } ?? "")")
            }
        case .ipv4(0, _), nil:
            sockets += joinEveryIPv4Interface(log: log).map { ($0, false, $1) }
        case .ipv4(let address, _):
            if let fd = joinIPv4(interfaceAddress: address, log: log) { sockets.append((fd, false, "")) }
        }
        guard !sockets.isEmpty else { return nil }
        // Ours alone, so that our announces looped back are told from another process's on this host.
        let cookie = String(UInt32.random(in: 1...UInt32.max), radix: 16)
        for (fd, isIPv6, via) in sockets {
            inbox.submit { reactor in
                let service = LocalDiscoveryService(
                    discovery: LocalDiscovery(cookie: cookie), fd: fd, isIPv6: isIPv6, log: log)
                if !reactor.host(service) { Glibc.close(fd) }
            }
            log("lsd: on \(isIPv6 ? LocalDiscoveryService.ipv6Group : LocalDiscoveryService.group)\(via)")
        }
        return LocalDiscoveryHandle(inbox: inbox)
    }

    /// BEP 14's IPv4 group joined on each interface that takes multicast (a socket each), or where the
    /// routing table says when there is none.
    /// Each socket comes with the words that say where it listens (" via ADDRESS", or nothing).
    private static func joinEveryIPv4Interface(log: @Sendable (String) -> Void) -> [(Int32, String)] {
        let interfaces = Socket.ipv4MulticastInterfaceAddresses()
        if interfaces.isEmpty { return joinIPv4(interfaceAddress: 0, log: log).map { [($0, "")] } ?? [] }
        return interfaces.compactMap { address in
            let dotted = [24, 16, 8, 0].map { String(address >> $0 & 0xff) }.joined(separator: ".")
            return joinIPv4(interfaceAddress: address, log: log).map { ($0, " via \(dotted)") }
        }
    }

    /// BEP 14's IPv4 group joined on the interface with `interfaceAddress` (0: the routing table's
    /// choice); nil, logged, when it cannot be.
    private static func joinIPv4(interfaceAddress: UInt32, log: @Sendable (String) -> Void) -> Int32? {
        do {
            return try Socket.joinMulticastUDP(
                group: LocalDiscoveryService.group, interfaceAddress: interfaceAddress)
        } catch {
            log("lsd: off: \(error)")
            return nil
        }
    }
}
