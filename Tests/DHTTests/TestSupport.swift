import Testing
import TorrentModel

@testable import DHT

/// Bytes from hex, ignoring spaces.
func bytes(_ hex: String) -> [UInt8] {
    guard let decoded = Hex.decode(hex.filter { !$0.isWhitespace }) else {
        Issue.record("bad hex in test: \(hex)")
        return []
    }
    return decoded
}

/// ASCII bytes of a test string.
func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// An identifier of any kind from 20 ASCII characters, like the BEP 5 examples' ids.
func asciiID<Kind>(_ text: String) -> Bytes20<Kind> {
    guard let id = Bytes20<Kind>(ascii(text)) else {
        Issue.record("not 20 bytes: \(text)")
        return Bytes20(Array(repeating: 0, count: 20))!
    }
    return id
}

/// A random identifier of any kind.
func randomID<Kind>(_ random: inout SeededRandom) -> Bytes20<Kind> {
    Bytes20((0..<20).map { _ in UInt8(truncatingIfNeeded: random.next()) })!
}

/// An IPv4 endpoint from dotted octets.
func endpoint(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, port: UInt16 = 6881) -> DHTEndpoint {
    DHTEndpoint(address: .v4(a << 24 | b << 16 | c << 8 | d), port: port)
}

/// The KRPC message decoded from the only datagram in `output`, sent to `destination`.
func onlyMessage(in output: DHTOutput, to destination: DHTEndpoint) -> KRPCMessage? {
    guard output.datagrams.count == 1, let datagram = output.datagrams.first else {
        Issue.record("expected one datagram, got \(output.datagrams.count)")
        return nil
    }
    #expect(datagram.destination == destination)
    return try? KRPCMessage.decode(datagram.bytes)
}

/// The response body of a message, or nil (recording an issue).
func response(_ message: KRPCMessage?) -> KRPCResponse? {
    guard case .response(let response)? = message?.body else {
        Issue.record("not a response: \(String(describing: message))")
        return nil
    }
    return response
}
