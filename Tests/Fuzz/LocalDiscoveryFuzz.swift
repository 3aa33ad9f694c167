// libFuzzer harness for BEP 14 (Local Service Discovery). Built by run.sh, not by SwiftPM.
import LocalDiscovery
import TorrentModel

/// The first byte picks what the rest is.
///
/// Even: a datagram heard on the multicast group. What decodes must stay within the bounds, come back
/// from its own encoding unchanged (cookie and port included) when that fits the size bound, and yield
/// through `LocalDiscovery` only peers of subscribed torrents with the announce's port, none when the
/// cookie is ours.
///
/// Odd: a script of subscriptions, unsubscriptions and time passing. The announces `LocalDiscovery`
/// sends must be at least a second apart, within 1,400 bytes, name only torrents subscribed with the
/// message's port, and never name a torrent again within 5 minutes.
@_cdecl("LLVMFuzzerTestOneInput")
public func localDiscoveryFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    if input.byte() % 2 == 0 {
        checkDecoding(input.rest())
    } else {
        runAnnouncing(&input)
    }
    return 0
}

private let ourCookie = "5a3c"

/// Infohashes 0...7, all bytes equal: few enough that a script subscribes the same ones again.
private func infoHash(_ index: UInt8) -> InfoHash { InfoHash([UInt8](repeating: index % 8, count: 20))! }

private func checkDecoding(_ datagram: [UInt8]) {
    let announce: LocalDiscoveryAnnounce
    do {
        announce = try LocalDiscoveryAnnounce(decoding: datagram)
    } catch {
        return
    }
    precondition(!announce.infoHashes.isEmpty, "an announce without infohash")
    precondition(
        announce.infoHashes.count <= LocalDiscoveryAnnounce.maximumInfoHashesDecoded, "over the bound")
    precondition(announce.port != 0, "port 0 taken")
    // A cookie is re-encoded as it came only if it has no line break or edge spaces of its own.
    if let cookie = announce.cookie, cookie.contains(where: { $0.isNewline }) || cookie.first == " " {
        return
    }
    // Our spelling (CR LF, a space after each colon, a Host header) can be longer than the sender's:
    // past the decoder's size bound there is nothing to compare (found by the long run, 2026-12-06).
    let encoded = announce.encoded()
    if encoded.count <= LocalDiscoveryAnnounce.maximumDecodedBytes {
        guard let again = try? LocalDiscoveryAnnounce(decoding: encoded) else {
            preconditionFailure("our own encoding is refused")
        }
        precondition(again == announce, "decoding our encoding changed the announce")
    }

    var discovery = LocalDiscovery(cookie: ourCookie)
    for index in UInt8(0)..<4 { discovery.subscribe(infoHash(index), announcePort: nil, now: 0) }
    let peers = discovery.received(datagram, from: .ipv4(0x0A00_0001), now: 0)
    if announce.cookie?.lowercased() == ourCookie {
        precondition(peers.isEmpty, "our own announce passed on")
    }
    for peer in peers {
        precondition(
            peer.port == announce.port && peer.address == .ipv4(0x0A00_0001), "a peer not as announced")
        precondition(announce.infoHashes.contains(peer.infoHash), "a torrent not announced")
        precondition((0..<4).map(infoHash).contains(peer.infoHash), "a torrent not subscribed")
    }
}

private func runAnnouncing(_ input: inout FuzzInput) {
    var discovery = LocalDiscovery(cookie: ourCookie)
    var ports: [InfoHash: UInt16?] = [:]
    var lastAnnounced: [InfoHash: UInt64] = [:]
    var lastSent: UInt64?
    var now: UInt64 = 0
    while !input.isAtEnd {
        let operation = input.byte()
        switch operation % 4 {
        case 0:
            let hash = infoHash(operation >> 2)
            let port: UInt16? = input.byte() % 4 == 0 ? nil : 6881 + UInt16(operation >> 5)
            // Resubscribing with another port announces again at once, as a new subscription does.
            if ports[hash] != port { lastAnnounced[hash] = nil }
            ports[hash] = port
            discovery.subscribe(hash, announcePort: port, now: now)
        case 1:
            let hash = infoHash(operation >> 2)
            ports[hash] = nil
            lastAnnounced[hash] = nil
            discovery.unsubscribe(hash)
        default:
            now += UInt64(input.byte()) * 20_000_000 * UInt64(operation >> 2 + 1)
        }
        guard let announce = discovery.nextAnnounce(now: now) else { continue }
        if let lastSent { precondition(now - lastSent >= 1_000_000_000, "two announces within a second") }
        lastSent = now
        precondition(announce.encoded().count <= LocalDiscoveryAnnounce.maximumEncodedBytes, "too long")
        precondition(announce.cookie == ourCookie, "announced without our cookie")
        for hash in announce.infoHashes {
            precondition(
                ports[hash] == .some(announce.port), "announced a torrent not subscribed on this port")
            if let last = lastAnnounced[hash] {
                precondition(now - last >= 5 * 60 * 1_000_000_000, "a torrent announced twice in 5 minutes")
            }
            lastAnnounced[hash] = now
        }
    }
}
