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
    /// Binds a socket per family (BEP 32) and places each family's node on the first reactor; the saved
    /// table is loaded here and the routers' names are resolved in the background. Nil (logged) when no
    /// socket can be had.
    static func startDHT(
        _ options: DHTOptions, listening: SocketAddress?, on inbox: ReactorInbox,
        log: @escaping @Sendable (String) -> Void
    ) -> DHTHandle? {
        let saved = options.statePath.flatMap { path in
            (try? SmallFile.read(path, maximumBytes: 1 << 20)).flatMap {
                try? DHTSavedState(decoding: $0)
            }
        }
        var generator = SystemRandomNumberGenerator()
        // BEP 32: one id for both DHTs, until BEP 42 gives one of them its own.
        let newID = NodeID((0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) })!
        var bound: [SocketAddress] = []
        for var address in options.bindAddresses {
            // Both families on the listening port, so that the port our peers hear of (BEP 5's PORT)
            // is right whichever family they reach us over.
            if address.port == 0, let listening { address = address.with(port: listening.port) }
            guard let (fd, local) = bindSocket(address, log: log) else { continue }
            bound.append(local)
            let family: DHTAddressFamily = local.family == AF_INET6 ? .ipv6 : .ipv4
            let id = saved?.id(for: family) ?? newID
            var configuration = options.configuration
            configuration.family = family
            // Tokens and transaction ids come from this: it must not be predictable.
            let seed = generator.next()
            inbox.submit { [configuration] reactor in
                let node = DHTNode(
                    id: id, configuration: configuration, random: SeededRandom(seed: seed),
                    now: Instant(nanoseconds: reactor.now))
                let service = DHTService(node: node, fd: fd, log: log)
                if let saved { service.addSavedNodes(saved.nodes) }
                if !reactor.host(service) { Glibc.close(fd) }
            }
            let kept = saved?.nodes.count { $0.endpoint.family == family } ?? 0
            log("dht: on \(local), \(kept) nodes kept from the last run")
        }
        guard !bound.isEmpty else { return nil }
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
                } else if case .success(let addresses) = HostResolver.addresses(of: host) {
                    // One address per family: each family's node takes its own.
                    endpoints += addresses.map { $0.with(port: port) }
                } else {
                    log("dht: bootstrap \(router) does not resolve")
                }
            }
            inbox.submit { [endpoints] reactor in
                for dht in reactor.dhtServices { dht.addBootstrap(endpoints) }
            }
        }
        return DHTHandle(inbox: inbox, boundAddresses: bound)
    }

    /// A UDP socket at `address`, or at any port of its host when that port is taken (by another
    /// program's UDP socket: the DHT shares our TCP listening port when it can); nil, logged, when
    /// neither can be had.
    private static func bindSocket(
        _ address: SocketAddress, log: @Sendable (String) -> Void
    ) -> (Int32, SocketAddress)? {
        let fd: Int32
        do {
            fd = try Socket.bindUDP(on: address)
        } catch {
            do {
                fd = try Socket.bindUDP(on: address.with(port: 0))
            } catch {
                log("dht: off on \(address): \(error)")
                return nil
            }
        }
        guard let local = try? Socket.localAddress(of: fd) else {
            Glibc.close(fd)
            return nil
        }
        return (fd, local)
    }

    /// Keeps the DHT's table for the next run (asked of its reactor; at most 2 s).
    func saveDHTState() {
        guard let path = dhtStatePath,
            let bytes = askDHT({ services -> [UInt8]? in
                let states = services.map(\.savedState)
                guard let first = states.first else { return nil }
                return (states.count > 1 ? first.merged(withIPv6: states[1]) : first).encoded()
            }) ?? nil
        else { return }
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

    /// The DHTs' routing table sizes now, both families together or `family`'s (nil: no DHT); asks their
    /// reactor and waits (tests, reports).
    public func dhtNodeCount(family: DHTAddressFamily? = nil) -> Int? {
        askDHT { services in
            services.filter { family == nil || $0.family == family }.reduce(0) {
                $0 + $1.routingTableNodeCount
            }
        }
    }

    /// `question` answered by the DHT nodes on their reactor (IPv4's first), waited for at most 2 s
    /// (nil: no DHT, or no answer).
    private func askDHT<Answer: Sendable>(
        _ question: @escaping @Sendable ([DHTService]) -> Answer
    ) -> Answer? {
        guard let dht else { return nil }
        let answer = Lock<Answer?>(nil)
        let done = DispatchSemaphore(value: 0)
        dht.inbox.submit { reactor in
            let services = reactor.dhtServices.sorted { $0.family == .ipv4 && $1.family == .ipv6 }
            answer.withLock { $0 = services.isEmpty ? nil : question(services) }
            done.signal()
        }
        guard done.wait(timeout: .now() + 2) == .success else { return nil }
        return answer.withLock { $0 }
    }
}
