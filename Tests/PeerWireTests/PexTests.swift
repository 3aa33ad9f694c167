import Testing
import TorrentModel

@testable import PeerWire

private func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

private func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> PeerAddress {
    PeerAddress(host: PeerAddress.Host(bytes: [a, b, c, d])!, port: port)
}

private func v6(_ hex: String, port: UInt16) -> PeerAddress {
    PeerAddress(host: PeerAddress.Host(bytes: Hex.decode(hex)!)!, port: port)
}

/// BEP 11's `ut_pex` payload, written out from the field definitions in the BEP.
@Suite struct PexMessageTests {
    static let local = v4(127, 0, 0, 1, port: 6881)
    static let gone = v4(10, 0, 0, 2, port: 51413)
    static let local6 = v6("20010db8000000000000000000000001", port: 6881)

    @Test func encodesTheCompactFormatsAndFlags() throws {
        let message = PexMessage(
            added: [PexPeer(address: Self.local, flags: [.seed, .reachable])], dropped: [Self.gone])
        let expected =
            utf8("d5:added6:") + bytes("7f000001 1ae1") + utf8("7:added.f1:") + [0x12] + utf8("7:dropped6:")
            + bytes("0a000002 c8d5") + utf8("e")
        #expect(message.encoded() == expected)
        #expect(try PexMessage(decoding: expected) == message)

        let ipv6 = PexMessage(
            added: [
                PexPeer(address: Self.local6, flags: [.prefersEncryption, .supportsUTP, .supportsHolepunch])
            ],
            dropped: [Self.local6])
        let expected6 =
            utf8("d5:added0:6:added618:") + bytes("20010db8000000000000000000000001 1ae1")
            + utf8("8:added6.f1:")
            + [0x0d] + utf8("7:dropped0:8:dropped618:") + bytes("20010db8000000000000000000000001 1ae1")
            + utf8("e")
        #expect(ipv6.encoded() == expected6)
        #expect(try PexMessage(decoding: expected6) == ipv6)
    }

    @Test func flagsAreOptionalAndUnknownBitsKept() throws {
        let withoutFlags = try PexMessage(decoding: utf8("d5:added6:") + bytes("01020304 0001") + utf8("e"))
        #expect(withoutFlags.added == [PexPeer(address: v4(1, 2, 3, 4, port: 1))])
        let reserved = try PexMessage(
            decoding: utf8("d5:added6:") + bytes("01020304 0001") + utf8("7:added.f1:") + [0xe0] + utf8("e"))
        #expect(reserved.added.first?.flags.rawValue == 0xe0)
        #expect(try PexMessage(decoding: reserved.encoded()) == reserved)
    }

    @Test func roundTripsMixedFamilies() throws {
        var random = SeededRandom(seed: 11)
        for _ in 0..<50 {
            func address() -> PeerAddress {
                let length = Bool.random(using: &random) ? 4 : 16
                let host = PeerAddress.Host(
                    bytes: (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) })!
                return PeerAddress(host: host, port: UInt16.random(in: 0...UInt16.max, using: &random))
            }
            let added = (0..<Int.random(in: 0...50, using: &random)).map { _ in
                PexPeer(
                    address: address(), flags: PexFlags(rawValue: UInt8.random(in: 0...31, using: &random)))
            }
            // Decoding lists the IPv4 contacts first.
            let message = PexMessage(
                added: added.filter { !$0.address.isIPv6 } + added.filter { $0.address.isIPv6 },
                dropped: (0..<Int.random(in: 0...50, using: &random)).map { _ in address() }.sorted {
                    !$0.isIPv6 && $1.isIPv6
                })
            #expect(try PexMessage(decoding: message.encoded()) == message)
        }
    }

    @Test func malformedListsAreRefused() {
        #expect(throws: PexMessage.DecodingError.malformedContacts(key: "added", byteCount: 7)) {
            try PexMessage(decoding: utf8("d5:added7:abcdefge"))
        }
        #expect(throws: PexMessage.DecodingError.malformedContacts(key: "dropped6", byteCount: 6)) {
            try PexMessage(decoding: utf8("d8:dropped66:abcdefe"))
        }
        #expect(throws: PexMessage.DecodingError.malformedContacts(key: "added", byteCount: -1)) {
            try PexMessage(decoding: utf8("d5:addedi1ee"))
        }
        #expect(
            throws: PexMessage.DecodingError.flagsCountMismatch(key: "added.f", flagCount: 2, contactCount: 1)
        ) {
            try PexMessage(decoding: utf8("d5:added6:abcdef7:added.f2:\0\0e"))
        }
        #expect(
            throws: PexMessage.DecodingError.flagsCountMismatch(
                key: "added6.f", flagCount: 1, contactCount: 0)
        ) {
            try PexMessage(decoding: utf8("d5:added0:8:added6.f1:\0e"))
        }
        #expect(throws: PexMessage.DecodingError.noContactLists) {
            try PexMessage(decoding: utf8("d1:xi1ee"))
        }
        #expect(throws: PexMessage.DecodingError.notADictionary) {
            try PexMessage(decoding: utf8("le"))
        }
        let valid = utf8("d5:added6:abcdefe")
        for length in 0..<valid.count {
            #expect(throws: PexMessage.DecodingError.self) {
                try PexMessage(decoding: Array(valid.prefix(length)))
            }
        }
        let huge =
            utf8("d7:dropped\(PexMessage.maximumPayloadBytes):")
            + [UInt8](repeating: 1, count: PexMessage.maximumPayloadBytes) + utf8("e")
        #expect(throws: PexMessage.DecodingError.self) { try PexMessage(decoding: huge) }
    }

    @Test func contactsBeyondTheBoundAreIgnored() throws {
        let count = PexMessage.maximumContactsKeptPerKey + 50
        let contacts = (0..<count).flatMap { index -> [UInt8] in
            [10, 0, UInt8(index >> 8), UInt8(index & 0xff), 0, 1]
        }
        let payload =
            utf8("d5:added\(contacts.count):") + contacts + utf8("7:added.f\(count):")
            + [UInt8](repeating: 2, count: count) + utf8("e")
        let message = try PexMessage(decoding: payload)
        #expect(message.added.count == PexMessage.maximumContactsKeptPerKey)
        #expect(message.added.last?.address == v4(10, 0, 0, 99, port: 1))
        #expect(message.added.allSatisfy { $0.flags == .seed })
    }
}

@Suite struct PexStateTests {
    static func peers(_ range: Range<Int>) -> [PeerAddress: PexFlags] {
        Dictionary(
            uniqueKeysWithValues: range.map { (v4(10, 1, UInt8($0 >> 8), UInt8($0 & 0xff), port: 6881), []) })
    }

    @Test func sendsTheDiffAtMostOnceAMinute() {
        var state = PexState()
        let a = v4(1, 1, 1, 1, port: 1)
        let b = v4(2, 2, 2, 2, port: 2)
        let c = v4(3, 3, 3, 3, port: 3)
        #expect(state.nextMessage(connectedPeers: [:], now: .zero) == nil, "nothing to say")
        #expect(
            state.nextMessage(connectedPeers: [a: .seed, b: []], now: seconds(1))
                == PexMessage(added: [PexPeer(address: a, flags: .seed), PexPeer(address: b)]))
        #expect(state.nextMessage(connectedPeers: [a: .seed, c: []], now: seconds(60)) == nil, "too soon")
        #expect(
            state.nextMessage(connectedPeers: [a: .seed, c: []], now: seconds(61))
                == PexMessage(added: [PexPeer(address: c)], dropped: [b]))
        #expect(state.nextMessage(connectedPeers: [a: .seed, c: []], now: seconds(200)) == nil, "no change")
        #expect(state.nextMessage(connectedPeers: [a: .seed], now: seconds(201)) == PexMessage(dropped: [c]))
    }

    @Test func neverTellsThePeerAboutItself() {
        let recipient = v4(9, 9, 9, 9, port: 9)
        var state = PexState(recipient: recipient)
        #expect(state.nextMessage(connectedPeers: [recipient: []], now: .zero) == nil)
    }

    @Test func capsEachMessageAndSendsTheRestLater() {
        var state = PexState()
        let all = Self.peers(0..<120)
        let limit = PexMessage.maximumContactsPerMessage
        var told: [PeerAddress] = []
        for minute in 0..<3 {
            let message = state.nextMessage(connectedPeers: all, now: seconds(UInt64(60 * minute)))
            #expect(message?.added.count == [limit, limit, 20][minute])
            told += message?.added.map(\.address) ?? []
        }
        #expect(Set(told) == Set(all.keys) && told.count == all.count)
        let dropAll = state.nextMessage(connectedPeers: [:], now: seconds(180))
        #expect(dropAll?.dropped.count == limit && dropAll?.added.isEmpty == true)
    }

    /// Peers come and go at random; whatever a recipient learns from the messages it is sent must be
    /// what we are connected to, once the changes have had time to drain.
    @Test(arguments: 0..<10) func theRecipientsViewConvergesToTheConnectedSet(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var state = PexState()
        var connected: [PeerAddress: PexFlags] = [:]
        var view: Set<PeerAddress> = []
        var lastMessage: Instant?
        for second in 0..<1200 {
            let now = seconds(UInt64(second))
            // Peers come and go for ten minutes; the next ten drain what is left to tell.
            for _ in 0..<(second < 600 ? Int.random(in: 0...3, using: &random) : 0) {
                let address = v4(10, 2, 0, UInt8.random(in: 0...200, using: &random), port: 1)
                connected[address] = connected[address] == nil ? [] : nil
            }
            guard let message = state.nextMessage(connectedPeers: connected, now: now) else { continue }
            if let lastMessage { #expect(now.nanoseconds(since: lastMessage) >= 60_000_000_000) }
            lastMessage = now
            let added = Set(message.added.map(\.address))
            let dropped = Set(message.dropped)
            #expect(added.count <= 50 && dropped.count <= 50 && added.isDisjoint(with: dropped))
            #expect(
                added.isDisjoint(with: view) && dropped.isSubset(of: view), "a duplicate or unknown entry")
            view.formUnion(added)
            view.subtract(dropped)
        }
        #expect(view == Set(connected.keys))
    }

    @Test func receivedContactsAreFiltered() {
        let own = PeerAddress.Host(bytes: [203, 0, 113, 7])!
        var state = PexState(ownHosts: [own])
        let good = PexPeer(address: v4(198, 51, 100, 1, port: 6881), flags: .seed)
        let good6 = PexPeer(address: v6("20010db8000000000000000000000002", port: 1))
        let bad = [
            v4(198, 51, 100, 2, port: 0), v4(0, 0, 0, 0, port: 1), v4(0, 1, 2, 3, port: 1),
            v4(224, 0, 0, 1, port: 1),
            v4(239, 1, 1, 1, port: 1), v4(255, 255, 255, 255, port: 1), PeerAddress(host: own, port: 6881),
            v6("00000000000000000000000000000000", port: 1), v6("ff020000000000000000000000000001", port: 1),
            v6("00000000000000000000ffffc6336401", port: 1),
            v4(198, 51, 100, 1, port: 6882),  // the same host as `good` again
            v4(198, 51, 100, 3, port: 3),  // added and dropped in one message
        ].map { PexPeer(address: $0) }
        let message = PexMessage(added: [good] + bad + [good6], dropped: [v4(198, 51, 100, 3, port: 3)])
        #expect(
            state.receive(message, now: .zero)
                == .accepted(candidates: [good, good6], dropped: message.dropped))
    }

    @Test func messagesFasterThanTheBoundAreIgnored() {
        var state = PexState()
        let message = PexMessage(added: [PexPeer(address: v4(198, 51, 100, 1, port: 1))])
        #expect(state.receive(message, now: seconds(100)) != .rateLimited)
        #expect(state.receive(message, now: seconds(129)) == .rateLimited)
        #expect(state.receive(message, now: seconds(130)) != .rateLimited)
    }
}
