import Glibc
import Testing

@testable import URing

@Suite struct DatagramTests {
    /// One unconnected socket sends to two others through the ring; each receive names its source.
    @Test func datagramsGoToTheirAddressAndNameTheirSource() throws {
        let harness = try Harness()
        let loopback = SocketAddress("127.0.0.1:0")!
        let sender = try Socket.bindUDP(on: loopback)
        let first = try Socket.bindUDP(on: loopback)
        let second = try Socket.bindUDP(on: loopback)
        defer { [sender, first, second].forEach { close($0) } }
        let senderAddress = try Socket.localAddress(of: sender)

        let incoming = Datagram(capacity: 1500)
        let received = try harness.enqueue(.receiveDatagram(fd: second, incoming))
        let outgoing = Datagram(capacity: 1500)
        let payload = patternBytes(count: 1200, seed: 7)
        #expect(outgoing.set(payload, to: try Socket.localAddress(of: second)))
        #expect(try harness.perform(.sendDatagram(fd: sender, outgoing)).value() == 1200)
        incoming.received(try harness.completion(of: received).result)
        #expect(Array(incoming.bytes) == payload)
        #expect(incoming.peer == senderAddress)
        #expect(!incoming.wasTruncated)

        // Too long for the receiver's buffer: cut, and said so.
        let small = Datagram(capacity: 100)
        let cut = try harness.enqueue(.receiveDatagram(fd: first, small))
        #expect(outgoing.set(payload, to: try Socket.localAddress(of: first)))
        _ = try harness.perform(.sendDatagram(fd: sender, outgoing))
        let completion = try harness.completion(of: cut)
        small.received(completion.result)
        #expect(small.count == 100 && small.wasTruncated)
        #expect(Array(small.bytes) == Array(payload.prefix(100)))
        #expect(!outgoing.set([UInt8](repeating: 0, count: 1501), to: senderAddress))
    }
}
