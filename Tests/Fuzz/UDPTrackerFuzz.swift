// libFuzzer harness for the UDP tracker protocol (BEP 15). Built by run.sh, not by SwiftPM.
import TorrentModel
import Tracker

/// Decodes the input as a datagram for both address families, then replays it as a script against a
/// `UDPTrackerClient`: each step either delivers a datagram (with the transaction id of the request in
/// flight patched in, so the fuzzer gets past the first check) or lets time pass. The client must never
/// trap, never schedule a timeout in the past, and never stay busy after reporting a result.
@_cdecl("LLVMFuzzerTestOneInput")
public func udpTrackerFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let limits = TrackerLimits(maxPeerCount: 200)
    for family in [AddressFamily.ipv4, .ipv6] {
        if case .announce(_, let response) = try? UDPTrackerResponse.decode(
            bytes, family: family, limits: limits)
        {
            precondition(response.peers.count <= limits.maxPeerCount, "too many peers")
            precondition(
                limits.intervalSecondsRange.contains(response.intervalSeconds), "interval not clamped")
        }
    }

    guard let infoHash = InfoHash(Array(repeating: 0xab, count: 20)),
        let peerID = PeerID(Array(repeating: 0x2d, count: 20))
    else { return 0 }
    let family: AddressFamily = (bytes.first ?? 0) & 1 == 0 ? .ipv4 : .ipv6
    var client = UDPTrackerClient(family: family, random: SeededRandom(seed: UInt64(bytes.count)))
    var now = Instant.zero
    var lastSent: [UInt8] = []
    let request: UDPTrackerClient.Request =
        (bytes.first ?? 0) & 2 == 0
        ? .announce(AnnounceRequest(infoHash: infoHash, peerID: peerID, port: 6881, leftBytes: 1))
        : .scrape([infoHash, infoHash])
    check(client.start(request, now: now), now: now, client: client, lastSent: &lastSent)

    var position = 1
    while position < bytes.count {
        let op = bytes[position]
        position += 1
        if op & 0x80 == 0 {
            let length = min(Int(op), bytes.count - position)
            var datagram = Array(bytes[position..<(position + length)])
            position += length
            if datagram.count >= 8 && lastSent.count >= 16 && op & 0x40 == 0 {
                datagram.replaceSubrange(4..<8, with: lastSent[12..<16])
            }
            check(client.receive(datagram: datagram, now: now), now: now, client: client, lastSent: &lastSent)
        } else {
            now = now.adding(seconds: UInt64(op & 0x3f) * 60)
            check(client.tick(now: now), now: now, client: client, lastSent: &lastSent)
        }
        if !client.isBusy {
            check(client.start(request, now: now), now: now, client: client, lastSent: &lastSent)
        }
    }
    return 0
}

private func check(
    _ actions: [UDPTrackerClient.Action], now: Instant, client: UDPTrackerClient,
    lastSent: inout [UInt8]
) {
    for action in actions {
        switch action {
        case .send(let datagram):
            precondition(datagram.count >= 16, "short datagram sent")
            lastSent = datagram
        case .nextTimeout(let at):
            precondition(at >= now, "timeout in the past")
        case .announced, .scraped, .failed:
            precondition(!client.isBusy, "busy after a result")
        case .ignored:
            break
        }
    }
}
