import Foundation
import Hashing
import Metainfo
import PeerWire
import Testing

@testable import Engine

/// What our extension handshake offers: the info dictionary to peers from a magnet link (BEP 9), never
/// for a private torrent (BEP 27).
@Suite struct MetadataServingTests {
    static func metainfo(isPrivate: Bool) throws -> Metainfo {
        var builder = TorrentBuilder(
            name: "m.bin", files: [TorrentBuilder.File(path: ["m.bin"], length: 40_000)], pieceLength: 16_384,
            format: .v1)
        builder.pieceHashesV1 = (0..<3).map { SHA1.hash([UInt8(truncatingIfNeeded: $0)]) }
        builder.isPrivate = isPrivate
        return try Metainfo(bytes: builder.build())
    }

    @Test func aPublicTorrentOffersItsMetadata() throws {
        let metainfo = try Self.metainfo(isPrivate: false)
        let session = DownloadSession(
            metainfo: metainfo, options: DownloadOptions(downloadDirectory: "/", peers: []))
        let handshake = try ExtensionHandshake(decoding: session.localExtensionHandshake())
        #expect(handshake.extensions["ut_metadata"] == DownloadSession.metadataExtensionID)
        #expect(handshake.metadataSize == metainfo.infoBytes.count)
        #expect(handshake.clientName?.hasPrefix("Potluck") == true)

        var server = try #require(session.metadataServer)
        guard case .data(0, let total, let payload) = server.answer(requestFor: 0, now: .zero) else {
            Issue.record("the first piece is served")
            return
        }
        #expect(total == metainfo.infoBytes.count && payload == Array(metainfo.infoBytes))
    }

    @Test func aPrivateTorrentDoesNot() throws {
        let session = DownloadSession(
            metainfo: try Self.metainfo(isPrivate: true),
            options: DownloadOptions(downloadDirectory: "/", peers: []))
        let handshake = try ExtensionHandshake(decoding: session.localExtensionHandshake())
        #expect(handshake.extensions["ut_metadata"] == nil)
        #expect(handshake.metadataSize == nil)
        #expect(session.metadataServer == nil)
    }
}
