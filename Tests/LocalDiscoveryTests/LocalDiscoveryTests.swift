import Testing
import TorrentModel

@testable import LocalDiscovery

/// The schedule of announces and what is passed on from those heard.
@Suite struct LocalDiscoveryTests {
    static let second: UInt64 = 1_000_000_000
    static let source = LocalDiscovery.Address.ipv4(0x0A4D_0102)  // 10.77.1.2

    static func hash(_ byte: UInt8) -> InfoHash { InfoHash([UInt8](repeating: byte, count: 20))! }

    static func announce(_ hashes: [InfoHash], port: UInt16 = 7000, cookie: String? = "other") -> [UInt8] {
        LocalDiscoveryAnnounce(port: port, infoHashes: hashes, cookie: cookie).encoded()
    }

    @Test func announcesAtOnceThenEveryFiveMinutes() {
        var discovery = LocalDiscovery(cookie: "ours")
        discovery.subscribe(Self.hash(1), announcePort: 6881, now: 10 * Self.second)
        let first = discovery.nextAnnounce(now: 10 * Self.second)
        #expect(first == LocalDiscoveryAnnounce(port: 6881, infoHashes: [Self.hash(1)], cookie: "ours"))
        #expect(discovery.nextAnnounce(now: 11 * Self.second) == nil)
        #expect(discovery.nextAnnounceDeadline() == 310 * Self.second)
        #expect(discovery.nextAnnounce(now: 309 * Self.second) == nil)
        #expect(discovery.nextAnnounce(now: 310 * Self.second)?.infoHashes == [Self.hash(1)])
    }

    /// Torrents due together share a message; one message per second at most, whatever is due.
    @Test func dueTorrentsShareMessagesSpacedOneSecondApart() {
        var discovery = LocalDiscovery(cookie: "ours")
        let capacity = LocalDiscoveryAnnounce.infoHashCapacity(cookie: "ours")
        for byte in 0..<UInt8(capacity + 3) {
            discovery.subscribe(Self.hash(byte), announcePort: 6881, now: 0)
        }
        discovery.subscribe(Self.hash(200), announcePort: 7000, now: 0)
        discovery.subscribe(Self.hash(201), announcePort: nil, now: 0)
        var announced: [InfoHash] = []
        var messages = 0
        for tenth in 0..<100 {
            let now = UInt64(tenth) * Self.second / 10
            guard let message = discovery.nextAnnounce(now: now) else { continue }
            messages += 1
            #expect(message.infoHashes.count <= capacity)
            #expect(message.infoHashes.allSatisfy { ($0 == Self.hash(200)) == (message.port == 7000) })
            announced += message.infoHashes
        }
        // Two messages for port 6881 (capacity + 3 torrents) and one for 7000, each a second apart.
        #expect(messages == 3)
        #expect(Set(announced).count == capacity + 4)
        #expect(!announced.contains(Self.hash(201)))
    }

    @Test func resubscribingWithAnotherPortAnnouncesAgain() {
        var discovery = LocalDiscovery(cookie: "ours")
        discovery.subscribe(Self.hash(1), announcePort: 6881, now: 0)
        _ = discovery.nextAnnounce(now: 0)
        discovery.subscribe(Self.hash(1), announcePort: 6881, now: 2 * Self.second)
        #expect(discovery.nextAnnounce(now: 2 * Self.second) == nil)
        discovery.subscribe(Self.hash(1), announcePort: 6882, now: 2 * Self.second)
        #expect(discovery.nextAnnounce(now: 2 * Self.second)?.port == 6882)
        discovery.unsubscribe(Self.hash(1))
        #expect(discovery.nextAnnounceDeadline() == nil)
    }

    @Test func passesOnPeersOfSubscribedTorrentsOnly() {
        var discovery = LocalDiscovery(cookie: "ours")
        discovery.subscribe(Self.hash(1), announcePort: nil, now: 0)
        let peers = discovery.received(
            Self.announce([Self.hash(1), Self.hash(2)]), from: Self.source, now: 0)
        #expect(peers == [LocalDiscovery.Peer(infoHash: Self.hash(1), address: Self.source, port: 7000)])
    }

    /// Over IPv6 the peer is the datagram's IPv6 source, told apart from any IPv4 one.
    @Test func passesOnIPv6Peers() {
        var discovery = LocalDiscovery(cookie: "ours")
        discovery.subscribe(Self.hash(1), announcePort: nil, now: 0)
        let source = LocalDiscovery.Address.ipv6([0xfd, 0] + Array(repeating: 0, count: 13) + [2])
        let peers = discovery.received(Self.announce([Self.hash(1)]), from: source, now: 0)
        #expect(peers == [LocalDiscovery.Peer(infoHash: Self.hash(1), address: source, port: 7000)])
        #expect(discovery.received(Self.announce([Self.hash(1)]), from: Self.source, now: 0).count == 1)
    }

    /// Multicast loops our announces back to us; another client's own cookie may be anything.
    @Test func ignoresOurOwnCookie() {
        var discovery = LocalDiscovery(cookie: "5a3c")
        discovery.subscribe(Self.hash(1), announcePort: 6881, now: 0)
        #expect(
            discovery.received(Self.announce([Self.hash(1)], cookie: "5A3C"), from: Self.source, now: 0)
                .isEmpty)
        #expect(
            discovery.received(Self.announce([Self.hash(1)], cookie: nil), from: Self.source, now: 0).count
                == 1)
    }

    @Test func aPeerIsPassedOnAgainOnlyAfterAMinute() {
        var discovery = LocalDiscovery(cookie: "ours")
        discovery.subscribe(Self.hash(1), announcePort: nil, now: 0)
        let message = Self.announce([Self.hash(1)])
        #expect(discovery.received(message, from: Self.source, now: 0).count == 1)
        #expect(discovery.received(message, from: Self.source, now: 30 * Self.second).isEmpty)
        #expect(discovery.received(message, from: .ipv4(0x0A4D_0103), now: 30 * Self.second).count == 1)
        #expect(discovery.received(message, from: Self.source, now: 61 * Self.second).count == 1)
    }

    /// A flood is read only up to the rate, and what is remembered stays bounded.
    @Test func floodsAreBounded() {
        var configuration = LocalDiscovery.Configuration()
        configuration.maximumReceivedPerSecond = 10
        configuration.maximumRemembered = 4
        var discovery = LocalDiscovery(cookie: "ours", configuration: configuration)
        discovery.subscribe(Self.hash(1), announcePort: nil, now: 0)
        var passed = 0
        for port in 1...20 {
            passed +=
                discovery.received(Self.announce([Self.hash(1)], port: UInt16(port)), from: .ipv4(1), now: 0)
                .count
        }
        #expect(passed == 10)
        // The table is full of peers heard just now: a new one still gets through, evicting the oldest.
        #expect(
            discovery.received(Self.announce([Self.hash(1)], port: 99), from: .ipv4(1), now: Self.second)
                .count == 1)
    }
}
