import Glibc
import LocalDiscovery
import URing

extension Engine {
    /// Joins the LSD multicast group and places the service on the first reactor. Nil (logged) when the
    /// socket cannot be had: no interface routes the group, say, as in a network namespace with neither
    /// a default route nor one for 239.0.0.0/8.
    static func startLocalDiscovery(
        on inbox: ReactorInbox, log: @escaping @Sendable (String) -> Void
    ) -> LocalDiscoveryHandle? {
        let fd: Int32
        do {
            fd = try Socket.joinMulticastUDP(group: LocalDiscoveryService.group)
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
