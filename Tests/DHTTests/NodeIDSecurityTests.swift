import Testing
import TorrentModel

@testable import DHT

/// BEP 42's node id restriction, against the table of test vectors in the BEP.
@Suite struct NodeIDSecurityTests {
    static let vectors: [(ip: DHTIPAddress, rand: UInt8, id: String)] = [
        (.v4(0x7c1f_4b15), 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),  // 124.31.75.21
        (.v4(0x154b_1f7c), 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),  // 21.75.31.124
        (.v4(0x4117_33aa), 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),  // 65.23.51.170
        (.v4(0x547c_490e), 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),  // 84.124.73.14
        (.v4(0x2bd5_3553), 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),  // 43.213.53.83
    ]

    @Test func crc32cCheckValue() {
        #expect(CRC32C.checksum(ascii("123456789")) == 0xe306_9283)
    }

    @Test func theBEPsExampleIDsVerify() {
        for vector in Self.vectors {
            let id = NodeID(hex: vector.id)!
            #expect(NodeIDSecurity.isValid(id, for: vector.ip), "\(vector.ip)")
            // Any other public address (almost surely) does not match.
            #expect(!NodeIDSecurity.isValid(id, for: .v4(0x0808_0808)), "\(vector.ip)")
        }
    }

    @Test func generatedIDsMatchTheBEPsPrefixes() {
        var random = SeededRandom(seed: 7)
        for vector in Self.vectors {
            let id = NodeIDSecurity.nodeID(for: vector.ip, randomByte: vector.rand, using: &random).bytes
            let expected = bytes(vector.id)
            #expect(id[0] == expected[0] && id[1] == expected[1] && id[2] & 0xf8 == expected[2] & 0xf8)
            #expect(id[19] == vector.rand)
        }
    }

    @Test func randomIDsVerifyForTheirAddressOnly() {
        var random = SeededRandom(seed: 42)
        for _ in 0..<200 {
            let ip: DHTIPAddress =
                random.next() & 1 == 0
                ? .v4(UInt32(truncatingIfNeeded: random.next()) | 0x0100_0000)
                : .v6(high: random.next() | 1 << 61, low: random.next())
            let id = NodeIDSecurity.nodeID(for: ip, using: &random)
            #expect(ip.isLocal || NodeIDSecurity.isValid(id, for: ip), "\(ip)")
            var corrupted = id.bytes
            corrupted[0] ^= 0x80
            #expect(ip.isLocal || !NodeIDSecurity.isValid(NodeID(corrupted)!, for: ip), "\(ip)")
        }
    }

    @Test func localAddressesAreExempt() {
        let anyID = NodeID(Array(repeating: 0, count: 20))!
        for local: DHTIPAddress in [
            .v4(0x0a01_0203), .v4(0xac1f_0001), .v4(0xc0a8_0101), .v4(0xa9fe_0001), .v4(0x7f00_0001),
            .v6(high: 0, low: 1), .v6(high: 0xfe80 << 48, low: 5), .v6(high: 0xfd00 << 48, low: 5),
        ] {
            #expect(local.isLocal && NodeIDSecurity.isValid(anyID, for: local), "\(local)")
        }
        #expect(!DHTIPAddress.v4(0xac20_0001).isLocal)  // 172.32.0.1 is outside 172.16.0.0/12
    }
}
