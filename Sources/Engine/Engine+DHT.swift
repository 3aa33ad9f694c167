import DHT
import Dispatch
import Glibc
import Hashing
import Locking
import Metainfo
import Storage
import TorrentModel
import URing

// The engine's DHT: its socket and node on the first reactor, its table kept between runs.
extension Engine {
    /// Binds the DHT's socket and places its node on the first reactor; the saved table is loaded here
    /// and the routers' names are resolved in the background. Nil (logged) when the socket cannot be had.
    static func startDHT(
        _ options: DHTOptions, listening: SocketAddress?, on inbox: ReactorInbox,
        log: @escaping @Sendable (String) -> Void
    ) -> DHTHandle? {
        var address = options.bindAddress
        if address.port == 0, let listening { address = address.with(port: listening.port) }
        let fd: Int32
        do {
            fd = try Socket.bindUDP(on: address)
        } catch {
            do {
                // The listening port is taken for UDP: any port will do for the DHT.
                fd = try Socket.bindUDP(on: address.with(port: 0))
            } catch {
                log("dht: off: \(error)")
                return nil
            }
        }
        guard let bound = try? Socket.localAddress(of: fd) else {
            Glibc.close(fd)
            return nil
        }
        let saved = options.statePath.flatMap { path in
            (try? SmallFile.read(path, maximumBytes: 1 << 20)).flatMap {
                try? DHTSavedState(decoding: $0)
            }
        }
        var generator = SystemRandomNumberGenerator()
        let id = saved?.id ?? NodeID((0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) })!
        let configuration = options.configuration
        let handle = DHTHandle(inbox: inbox, boundAddress: bound)
        // Tokens and transaction ids come from this: it must not be predictable.
        let seed = generator.next()
        inbox.submit { reactor in
            let node = DHTNode(
                id: id, configuration: configuration, random: SeededRandom(seed: seed),
                now: Instant(nanoseconds: reactor.now))
            let service = DHTService(node: node, fd: fd, log: log)
            if let saved { service.addSavedNodes(saved.nodes) }
            if !reactor.host(service) { Glibc.close(fd) }
        }
        log("dht: on \(bound), \(saved?.nodes.count ?? 0) nodes kept from the last run")
        let routers = options.bootstrap
        DispatchQueue.global().async {
            var endpoints: [SocketAddress] = []
            for router in routers {
                guard let colon = router.lastIndex(of: ":"),
                    let port = UInt16(router[router.index(after: colon)...])
                else {
                    log("dht: bootstrap \(router) is not HOST:PORT")
                    continue
                }
                let host = String(router[..<colon].filter { $0 != "[" && $0 != "]" })
                if let numeric = SocketAddress(host: host, port: port) {
                    endpoints.append(numeric)
                } else if case .resolved(let resolved) = HostResolver.resolve(host) {
                    endpoints.append(resolved.with(port: port))
                } else {
                    log("dht: bootstrap \(router) does not resolve")
                }
            }
            inbox.submit { [endpoints] reactor in reactor.dht?.addBootstrap(endpoints) }
        }
        return handle
    }

    /// Keeps the DHT's table for the next run (asked of its reactor; at most 2 s).
    func saveDHTState() {
        guard let path = dhtStatePath, let bytes = askDHT({ $0.savedState.encoded() }) else { return }
        // Its folder, and any folder above it that is missing (`mkdir -p`).
        var folder = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        where !part.isEmpty {
            folder += "/" + part
            mkdir(folder, 0o755)
        }
        do {
            try SmallFile.writeAtomically(bytes, to: path)
        } catch {
            log("dht: the routing table was not kept: \(error)")
        }
    }

    /// The DHT's routing table size now (nil: no DHT); asks its reactor and waits (tests, reports).
    public func dhtNodeCount() -> Int? { askDHT { $0.routingTableNodeCount } }

    /// `question` answered by the DHT on its reactor, waited for at most 2 s (nil: no DHT, or no answer).
    private func askDHT<Answer: Sendable>(_ question: @escaping @Sendable (DHTService) -> Answer) -> Answer? {
        guard let dht else { return nil }
        let answer = Lock<Answer?>(nil)
        let done = DispatchSemaphore(value: 0)
        dht.inbox.submit { reactor in
            answer.withLock { $0 = reactor.dht.map(question) }
            done.signal()
        }
        guard done.wait(timeout: .now() + 2) == .success else { return nil }
        return answer.withLock { $0 }
    }
}
