import Foundation
import Glibc
import Locking
import Metainfo
import PeerWire
import Testing
import TorrentModel
import URing

@testable import Engine

/// BEP 11 peer exchange between engines on loopback, each listening on an address of its own (a
/// receiver takes one candidate per host), and with a hand-written peer that misbehaves.
@Suite struct PeerExchangeTests {
    final class LogLines: Sendable {
        let lines = Lock<[String]>([])
    }

    /// An engine running one torrent, with its log kept.
    final class Peer {
        let engine: Engine
        let id: TorrentID
        let lines = LogLines()

        init(
            _ metainfo: Metainfo, directory: URL, listen host: String,
            configure: (inout DownloadOptions) -> Void
        )
            throws
        {
            var engineOptions = EngineOptions()
            engineOptions.namesTorrentsInLog = false
            let lines = lines
            engineOptions.log = { line in lines.lines.withLock { $0.append(line) } }
            engine = try Engine(options: engineOptions)
            var options = DownloadOptions(downloadDirectory: directory.path, peers: [])
            options.listenAddress = SocketAddress("\(host):0")
            configure(&options)
            id = try engine.add(metainfo, options: options)
        }

        var status: DownloadStatus? { engine.snapshot(id)?.status }
        var address: SocketAddress? { status?.listenAddress }
        var log: String { lines.lines.withLock { $0.joined(separator: "\n") } }
    }

    /// The middle seeder dialled two other seeders; a leecher told only about the middle one learns them
    /// from its PEX message and downloads from them too. Every seeder's upload is capped (the middle
    /// one's most) so that neither learned seeder can deliver the whole file before the leecher has
    /// reached the other: uncapped, one of them sometimes served it all within milliseconds.
    @Test func aLeecherLearnsTheMiddlePeersSeedersAndDownloadsFromThem() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("pex-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("pex-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let metainfo = try EngineTests.makeTorrent(
            named: "p.bin", size: 1_500_000, seed: 5, in: seedDirectory)
        func seeder(_ host: String, peers: [SocketAddress] = [], uploadRate: Int = 0) throws -> Peer {
            let peer = try Peer(metainfo, directory: seedDirectory, listen: host) { options in
                options.seedWhenComplete = true
                options.peers = peers
                options.maximumUploadRateBytesPerSecond = uploadRate
            }
            #expect(EngineTests.eventually { peer.address != nil })
            return peer
        }
        let first = try seeder("127.0.0.2", uploadRate: 250_000)
        let second = try seeder("127.0.0.3", uploadRate: 250_000)
        let middle = try seeder(
            "127.0.0.4", peers: [try #require(first.address), try #require(second.address)],
            uploadRate: 40_000)
        #expect(EngineTests.eventually { middle.status?.connectedPeers == 2 }, "\(middle.log)")

        let middleAddress = try #require(middle.address)
        let leecher = try Peer(metainfo, directory: leechDirectory, listen: "127.0.0.5") { options in
            options.peers = [middleAddress]
        }
        #expect(
            EngineTests.eventually { leecher.engine.snapshot(leecher.id)?.isLive == false }, "\(leecher.log)")
        #expect(leecher.engine.snapshot(leecher.id)?.activity == .finished)
        #expect(
            FileManager.default.contentsEqual(
                atPath: seedDirectory.appendingPathComponent("p.bin").path,
                andPath: leechDirectory.appendingPathComponent("p.bin").path))
        let log = leecher.log
        #expect(log.contains("pex: 2 peers from \(middleAddress)"), "\(log)")
        for learned in [first, second] {
            let address = try #require(learned.address)
            #expect(
                log.contains("peer \(address) totals: received "), "never traded with \(address):\n\(log)")
        }
        for peer in [first, second, middle] { peer.engine.shutdown() }
    }

    /// A hand-written peer sends a `ut_metadata` message of a type to come (ignored, BEP 9), a PEX
    /// message, a second one too soon (ignored), then one that does not decode and, in the same segment,
    /// `interested`: the connection ends, saying why, and what followed the bad message is not acted on
    /// (the choker, which had let the peer go, stopped the process when told of its interest).
    @Test func messagesTooSoonAreIgnoredAndAMalformedOneEndsTheConnection() throws {
        let directory = try EngineTests.temporaryDirectory("pex-hostile")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "h.bin", size: 60_000, seed: 6, in: directory)
        let seeder = try Peer(metainfo, directory: directory, listen: "127.0.0.6") {
            $0.seedWhenComplete = true
        }
        defer { seeder.engine.shutdown() }
        #expect(EngineTests.eventually { seeder.status?.phase == .seeding })
        let fd = try IncomingRouterTests.connect(to: try #require(seeder.address))
        defer { close(fd) }

        var bytes: [UInt8] = []
        Handshake(
            reserved: .extensionProtocol, infoHash: metainfo.wireInfoHash,
            peerID: PeerID([UInt8](repeating: 9, count: 20))!
        ).encode(into: &bytes)
        func extended(_ id: UInt8, _ payload: [UInt8]) {
            WireEncoder.appendExtended(id: id, payload: payload.span, into: &bytes)
        }
        extended(0, ExtensionHandshake(extensions: ["ut_pex": 1], listenPort: 1).encoded())
        extended(DownloadSession.metadataExtensionID, Array("d8:msg_typei7ee".utf8))
        let id = DownloadSession.peerExchangeExtensionID
        for host: UInt8 in [7, 8] {
            extended(
                id,
                PexMessage(added: [
                    PexPeer(address: PeerAddress(host: .ipv4(0x7f00_0000 | UInt32(host)), port: 1))
                ]).encoded())
        }
        extended(id, Array("d5:added7:abcdefge".utf8))
        bytes += [0, 0, 0, 1, 2]  // interested
        #expect(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } == bytes.count)
        #expect(Self.readsUntilClosed(fd, seconds: 5))
        #expect(
            EngineTests.eventually(5) { seeder.log.contains("protocol: ut_pex: malformedContacts") },
            "\(seeder.log)")
        let log = seeder.log
        #expect(log.contains("pex: 1 peers from") && !log.contains("127.0.0.8:1"), "\(log)")
        #expect(!log.contains("ut_metadata"), "\(log)")
    }

    /// Reads what `fd` receives until the other end closes it (true) or `seconds` pass.
    static func readsUntilClosed(_ fd: Int32, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
        }
        return false
    }

    @Test func aPrivateTorrentNeitherOffersNorTakesPeerExchange() throws {
        let offered = DownloadSession(
            metainfo: try MetadataServingTests.metainfo(isPrivate: false),
            options: DownloadOptions(downloadDirectory: "/", peers: []))
        #expect(
            try ExtensionHandshake(decoding: offered.localExtensionHandshake()).extensions["ut_pex"]
                == DownloadSession.peerExchangeExtensionID)
        let refused = DownloadSession(
            metainfo: try MetadataServingTests.metainfo(isPrivate: true),
            options: DownloadOptions(downloadDirectory: "/", peers: []))
        #expect(
            try ExtensionHandshake(decoding: refused.localExtensionHandshake()).extensions["ut_pex"] == nil)
        #expect(!refused.offersPeerExchange)
    }

    /// `--no-pex` (and the daemon's pex-enabled false): a public torrent that neither offers nor takes it.
    @Test func peerExchangeTurnedOffIsNeitherOfferedNorTaken() throws {
        var options = DownloadOptions(downloadDirectory: "/", peers: [])
        options.usePeerExchange = false
        let session = DownloadSession(
            metainfo: try MetadataServingTests.metainfo(isPrivate: false), options: options)
        #expect(
            try ExtensionHandshake(decoding: session.localExtensionHandshake()).extensions["ut_pex"] == nil)
        #expect(!session.offersPeerExchange)
    }
}
