import Glibc
import LocalDiscovery
import URing

extension Engine {
    /// Joins the LSD multicast groups of the families the engine takes connections on and places a
    /// service for each on the first reactor. Listening on one address, it joins and announces on that
    /// address's interface: the peers it tells must see that address as the source (an interface may
    /// have several). Listening on every IPv4 address, or on none, the routing table picks the
    /// interface; on every IPv6 address (`[::]`, which takes IPv4 connections too) both families are
    /// joined that way. Nil (logged) when no socket can be had: listening on every address in a network
    /// namespace with neither a default route nor one for the group, say.
    static func startLocalDiscovery(
        listening: SocketAddress?, on inbox: ReactorInbox, log: @escaping @Sendable (String) -> Void
    ) -> LocalDiscoveryHandle? {
        var sockets: [(fd: Int32, isIPv6: Bool)] = []
        let anyIPv6 = Array(repeating: UInt8(0), count: 16)
        switch listening {
        case .ipv6(let address, _):
            if address == anyIPv6, let fd = joinIPv4(interfaceAddress: 0, log: log) {
                sockets.append((fd, false))
            }
            let index =
                address == anyIPv6
                ? 0 : Socket.ipv6InterfaceAddresses().first { $0.address == address }?.interfaceIndex
            if let index {
                do {
                    let fd = try Socket.joinMulticastUDP6(
                        group: LocalDiscoveryAnnounce.ipv6GroupAddress,
                        port: LocalDiscoveryAnnounce.groupPort,
                        interfaceIndex: index)
                    sockets.append((fd, true))
                } catch {
                    log("lsd: off for IPv6: \(error)")
                }
            } else {
                log("lsd: off for IPv6: no interface has \(listening.map { "\($0)" } ?? "")")
            }
        case .ipv4(let address, _):
            if let fd = joinIPv4(interfaceAddress: address, log: log) { sockets.append((fd, false)) }
        case nil:
            if let fd = joinIPv4(interfaceAddress: 0, log: log) { sockets.append((fd, false)) }
        }
        guard !sockets.isEmpty else { return nil }
        // Ours alone, so that our announces looped back are told from another process's on this host.
        let cookie = String(UInt32.random(in: 1...UInt32.max), radix: 16)
        for (fd, isIPv6) in sockets {
            inbox.submit { reactor in
                let service = LocalDiscoveryService(
                    discovery: LocalDiscovery(cookie: cookie), fd: fd, isIPv6: isIPv6, log: log)
                if !reactor.host(service) { Glibc.close(fd) }
            }
            log("lsd: on \(isIPv6 ? LocalDiscoveryService.ipv6Group : LocalDiscoveryService.group)")
        }
        return LocalDiscoveryHandle(inbox: inbox)
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
