import Foundation
import Glibc
import Metainfo
import PeerWire
import Testing
import TorrentModel
import URing

@testable import Engine

/// A banned peer stays out: a hand-written peer dials a leecher, serves garbage for every block it is
/// asked for, is banned when the piece fails its hash, and is refused when it dials again from another
/// port (the ban was kept under its passing port, so it came straight back with a clean slate).
@Suite struct BanTests {
    @Test func aBannedPeerDiallingAgainIsRefused() throws {
        let source = try EngineTests.temporaryDirectory("ban-source")
        let directory = try EngineTests.temporaryDirectory("ban-leech")
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: directory)
        }
        let metainfo = try EngineTests.makeTorrent(named: "b.bin", size: 16_384, seed: 8, in: source)
        let leecher = try PeerExchangeTests.Peer(metainfo, directory: directory, listen: "127.0.0.9") { _ in }
        defer { leecher.engine.shutdown() }
        #expect(EngineTests.eventually { leecher.address != nil })
        let address = try #require(leecher.address)

        let fd = try IncomingRouterTests.connect(to: address)
        defer { close(fd) }
        var opening: [UInt8] = []
        Handshake(
            reserved: [], infoHash: metainfo.wireInfoHash, peerID: PeerID([UInt8](repeating: 7, count: 20))!
        ).encode(into: &opening)
        opening += [0, 0, 0, 2, 5, 0x80]  // bitfield: the one piece
        opening += [0, 0, 0, 1, 1]  // unchoke
        #expect(Self.sendAll(fd, opening))
        #expect(Self.answerRequestsWithGarbage(fd, seconds: 10), "\(leecher.log)")
        #expect(EngineTests.eventually(5) { leecher.log.contains("banned") }, "\(leecher.log)")

        // Refusals in the reactor's first second are summed up later rather than said at once.
        Thread.sleep(forTimeInterval: 1.2)
        let again = try IncomingRouterTests.connect(to: address)
        defer { close(again) }
        #expect(Self.sendAll(again, Array(opening.prefix(68))))
        #expect(IncomingRouterTests.closedByPeer(again, seconds: 5))
        #expect(
            EngineTests.eventually(5) { leecher.log.contains("refused an incoming connection: banned") },
            "\(leecher.log)")
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } == bytes.count
    }

    /// Reads the leecher's messages (its handshake first) and answers each request with a block of
    /// zeros, until the leecher closes the connection (true) or `seconds` pass.
    static func answerRequestsWithGarbage(_ fd: Int32, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var received: [UInt8] = []
        var handshakeRead = false
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
            guard count > 0 else { continue }
            received += buffer[..<count]
            if !handshakeRead {
                guard received.count >= 68 else { continue }
                received.removeFirst(68)
                handshakeRead = true
            }
            while received.count >= 4 {
                let length = received[..<4].reduce(0) { $0 << 8 | Int($1) }
                guard received.count >= 4 + length else { break }
                let message = Array(received[4..<4 + length])
                received.removeFirst(4 + length)
                guard message.first == 6, message.count == 13 else { continue }  // request
                let blockLength = message[9..<13].reduce(0) { $0 << 8 | Int($1) }
                var piece: [UInt8] = []
                let total = 9 + blockLength
                piece += [UInt8(total >> 24 & 0xff), UInt8(total >> 16 & 0xff), UInt8(total >> 8 & 0xff)]
                piece += [UInt8(total & 0xff), 7] + message[1..<9]
                piece += [UInt8](repeating: 0, count: blockLength)
                _ = sendAll(fd, piece)
            }
        }
        return false
    }
}
