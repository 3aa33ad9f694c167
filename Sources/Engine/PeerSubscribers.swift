import TorrentModel
import URing

/// The torrents, on any reactor, that asked a discovery service (the DHT, local discovery) for one
/// infohash's peers. Nearly every infohash has one, kept inline: a dictionary of delivery closures
/// per infohash cost about 0.3 KiB a torrent at rest, in each service of each address family.
struct PeerSubscribers {
    /// A tenant to hand peers to, on the reactor behind `reply`.
    struct Subscriber {
        let key: HostKey
        let reply: ReactorInbox
    }

    private var first: Subscriber?
    private var others: [Subscriber] = []

    var isEmpty: Bool { first == nil }

    /// Adds `key`, or replaces where its peers go.
    mutating func insert(_ key: HostKey, reply: ReactorInbox) {
        remove(key)
        if first == nil {
            first = Subscriber(key: key, reply: reply)
        } else {
            others.append(Subscriber(key: key, reply: reply))
        }
    }

    mutating func remove(_ key: HostKey) {
        if first?.key == key {
            first = others.popLast()
        } else {
            others.removeAll { $0.key == key }
        }
    }

    /// Hands `peers` to every subscriber, as a command on its own reactor.
    func deliver(_ peers: [SocketAddress]) {
        for subscriber in [first].compactMap({ $0 }) + others {
            let key = subscriber.key
            subscriber.reply.submit { reactor in
                reactor.tenant(with: key)?.peersDiscovered(peers, now: reactor.now)
            }
        }
    }
}

/// A discovery service on the engine's first reactor, one per address family, that torrents on any
/// reactor subscribe to for an infohash's peers.
protocol DiscoveryService: AnyObject {
    /// This kind's services on `reactor`.
    static func all(on reactor: Reactor) -> [Self]
    func subscribe(_ infoHash: InfoHash, key: HostKey, reply: ReactorInbox, announcePort: UInt16?)
    func unsubscribe(_ infoHash: InfoHash, key: HostKey)
}

/// What a torrent on any reactor holds to reach a kind of discovery service: commands through the
/// inbox of the reactor the services live on, passed to every family's service.
protocol DiscoveryHandle: Sendable {
    associatedtype Service: DiscoveryService
    var inbox: ReactorInbox { get }
}

extension DiscoveryHandle {
    /// Passes peers found for `infoHash` to the tenant `key` on the reactor behind `reply`; with
    /// `announcePort` (we take connections), also announces us.
    func subscribe(_ infoHash: InfoHash, key: HostKey, reply: ReactorInbox, announcePort: UInt16?) {
        inbox.submit { reactor in
            for service in Service.all(on: reactor) {
                service.subscribe(infoHash, key: key, reply: reply, announcePort: announcePort)
            }
        }
    }

    func unsubscribe(_ infoHash: InfoHash, key: HostKey) {
        inbox.submit { reactor in
            for service in Service.all(on: reactor) { service.unsubscribe(infoHash, key: key) }
        }
    }
}
