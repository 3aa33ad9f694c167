// libFuzzer harness for BEP 11 (ut_pex). Built by run.sh, not by SwiftPM.
import PeerWire
import TorrentModel

/// The first byte picks what the rest is.
///
/// Even: a `ut_pex` payload from a peer. What decodes must keep within the per-key bound, come back from
/// its own encoding unchanged, and yield through `PexState` only usable candidates (a port, a routable
/// host that is not ours, one per host, none also dropped) taken from what was added.
///
/// Odd: a script of peers connecting and disconnecting while time passes. The messages `PexState` sends
/// must be a minute apart, within 50 added and 50 dropped, never repeat what the recipient was told nor
/// drop what it was not, and decode from their own encoding.
@_cdecl("LLVMFuzzerTestOneInput")
public func pexFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    if input.byte() % 2 == 0 {
        checkDecoding(input.rest())
    } else {
        runSending(&input)
    }
    return 0
}

private let ownHost = PeerAddress.Host(bytes: [127, 0, 0, 1])!

private func checkDecoding(_ payload: [UInt8]) {
    let message: PexMessage
    do {
        message = try PexMessage(decoding: payload)
    } catch {
        return
    }
    let bound = PexMessage.maximumContactsKeptPerKey
    precondition(message.added.count <= 2 * bound && message.dropped.count <= 2 * bound, "over the bound")
    let firstIPv6 = message.added.firstIndex { $0.address.isIPv6 } ?? message.added.count
    precondition(
        message.added[firstIPv6...].allSatisfy(\.address.isIPv6), "IPv4 and IPv6 entries interleaved")
    guard let again = try? PexMessage(decoding: message.encoded()) else {
        preconditionFailure("our own encoding is refused")
    }
    precondition(again == message, "decoding our encoding changed the message")

    var state = PexState(ownHosts: [ownHost])
    guard case .accepted(let candidates, let dropped) = state.receive(message, now: .zero) else {
        preconditionFailure("a first message was rate-limited")
    }
    precondition(dropped == message.dropped, "dropped entries changed")
    precondition(Set(candidates.map(\.address.host)).count == candidates.count, "two candidates on one host")
    for candidate in candidates {
        let address = candidate.address
        precondition(message.added.contains(candidate), "a candidate that was not added")
        precondition(address.port != 0 && !address.host.isUnroutable && address.host != ownHost, "unusable")
        precondition(!message.dropped.contains(address), "a candidate that was also dropped")
    }
    precondition(state.receive(message, now: .zero) == .rateLimited, "a second message at once was accepted")
}

/// Operations, one byte each: the low bit set toggles peer `byte >> 1` (of 128, a quarter of them IPv6),
/// clear lets `byte >> 1` seconds pass and asks for a message.
private func runSending(_ input: inout FuzzInput) {
    var state = PexState(recipient: address(0))
    var connected: [PeerAddress: PexFlags] = [:]
    var view: Set<PeerAddress> = []
    var now = Instant.zero
    var lastSent: Instant?
    while !input.isAtEnd {
        let operation = input.byte()
        if operation & 1 == 1 {
            let peer = address(Int(operation >> 1))
            connected[peer] = connected[peer] == nil ? PexFlags(rawValue: operation >> 3) : nil
            continue
        }
        now = now.adding(seconds: UInt64(operation >> 1))
        guard let message = state.nextMessage(connectedPeers: connected, now: now) else { continue }
        if let lastSent {
            precondition(now.nanoseconds(since: lastSent) >= 60_000_000_000, "two messages within a minute")
        }
        lastSent = now
        let limit = PexMessage.maximumContactsPerMessage
        let added = Set(message.added.map(\.address))
        let dropped = Set(message.dropped)
        precondition(!added.isEmpty || !dropped.isEmpty, "an empty message")
        precondition(
            added.count == message.added.count && dropped.count == message.dropped.count, "duplicates")
        precondition(added.count <= limit && dropped.count <= limit, "more than 50 added or dropped")
        precondition(added.isDisjoint(with: view) && dropped.isSubset(of: view), "the diff is not a diff")
        precondition(!added.contains(address(0)), "the recipient was told about itself")
        precondition(added.allSatisfy { connected[$0] != nil }, "a peer we are not connected to was added")
        precondition(dropped.allSatisfy { connected[$0] == nil }, "a peer still connected was dropped")
        view.formUnion(added)
        view.subtract(dropped)
        guard let decoded = try? PexMessage(decoding: message.encoded()) else {
            preconditionFailure("our own message is refused")
        }
        precondition(Set(decoded.added) == Set(message.added), "our message did not round-trip")
    }
}

/// Peer `index`: every fourth is IPv6.
private func address(_ index: Int) -> PeerAddress {
    let host =
        index % 4 == 3
        ? PeerAddress.Host(
            bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [UInt8(index)])!
        : PeerAddress.Host(bytes: [10, 0, 0, UInt8(index)])!
    return PeerAddress(host: host, port: 6881)
}
