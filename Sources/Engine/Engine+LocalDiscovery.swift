import Glibc
import LocalDiscovery
import URing

extension Engine {
    /// Joins the LSD multicast group and places the service on the first reactor. Listening on one IPv4
    /// address, it joins and announces on that address's interface: the peers it tells must see that
    /// address as the source (an interface may have several). Otherwise the routing table picks the
    /// interface. Nil (logged) when the socket cannot be had: listening on every address in a network
    /// namespace with neither a default route nor one for 239.0.0.0/8, say.
    static func startLocalDiscovery(
        listening: SocketAddress?, on inbox: ReactorInbox, log: @escaping @Sendable (String) -> Void
    ) -> LocalDiscoveryHandle? {
        var interfaceAddress: UInt32 = 0
        if case .ipv4(let address, _)? = listening { interfaceAddress = address }
        let fd: Int32
        do {
            fd = try Socket.joinMulticastUDP(
                group: LocalDiscoveryService.group, interfaceAddress: interfaceAddress)
        } catch {
            log("lsd: off: \(error)")
            return nil
        }
        // Ours alone, so that our announces looped back are told from another process's on this host.
        let cookie = String(UInt32.random(in: 1...UInt32.max), radix: 16)
        inbox.submit { reactor in
            let service = LocalDiscoveryService(discovery: LocalDiscovery(cookie: cookie), fd: fd, log: log)
            if !reactor.host(service) { Glibc.close(fd) }
        }
        log("lsd: on \(LocalDiscoveryService.group)")
        return LocalDiscoveryHandle(inbox: inbox)
    }
}
