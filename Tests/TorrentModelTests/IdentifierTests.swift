import Testing
import TorrentModel

/// Infohashes and peer ids share one 20-byte layout but are distinct types. That they cannot be mixed
/// up (passing a `PeerID` where an `InfoHash` is expected, comparing one with the other) is checked by
/// the compiler, not here: a test of it could not fail at run time.
@Suite struct IdentifierTests {
    @Test func hexRoundTrip() {
        let bytes: [UInt8] = Array(0..<20)
        let id = InfoHash(bytes)!
        #expect(id.hex == "000102030405060708090a0b0c0d0e0f10111213")
        #expect(Hex.decode(id.hex) == bytes)
        #expect(Hex.decode("ABcd") == [0xab, 0xcd])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(InfoHash([1, 2, 3]) == nil)
    }

    @Test func eachKindRoundTripsBytesAndHex() {
        let bytes: [UInt8] = (0..<20).map { UInt8($0 * 13) }
        let infoHash = InfoHash(bytes)!
        let peerID = PeerID(bytes)!
        #expect(infoHash.bytes == bytes)
        #expect(peerID.bytes == bytes)
        #expect(InfoHash(hex: infoHash.hex) == infoHash)
        #expect(PeerID(hex: peerID.hex.uppercased()) == peerID)
        #expect(infoHash.description == peerID.description)
        #expect(InfoHash(hex: String(infoHash.hex.dropLast(2))) == nil)
        #expect(PeerID(hex: "zz" + String(peerID.hex.dropFirst(2))) == nil)
    }

    @Test func equalityAndHashingFollowEveryByte() {
        let zero = PeerID([UInt8](repeating: 0, count: 20))!
        var ids: Set<PeerID> = [zero]
        for index in 0..<20 {
            var bytes = [UInt8](repeating: 0, count: 20)
            bytes[index] = 1
            let id = PeerID(bytes)!
            #expect(id != zero)
            ids.insert(id)
        }
        #expect(ids.count == 21)
    }
}
