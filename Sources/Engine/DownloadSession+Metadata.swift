import PeerWire
import TorrentModel

// MARK: Serving the info dictionary (BEP 9)

extension DownloadSession {
    /// The number peers put on the `ut_metadata` messages they send us (BEP 10: each side picks the
    /// numbers it receives on).
    static let metadataExtensionID: UInt8 = 2

    /// Our BEP 10 handshake. It offers `ut_metadata`, so that a peer that came from a magnet link can
    /// fetch the info dictionary from us, and `ut_pex`, unless the torrent is private (BEP 27: its
    /// metadata comes only with the .torrent file, its peers only from its trackers). `p` lets a peer we
    /// dialled pass our listening port on to others.
    func localExtensionHandshake() -> [UInt8] {
        if let extensionHandshakeBytes { return extensionHandshakeBytes }
        var handshake = Self.extensionHandshake
        if let metadataServer {
            handshake.extensions["ut_metadata"] = Self.metadataExtensionID
            handshake.metadataSize = metadataServer.metadataSize
        }
        if offersPeerExchange { handshake.extensions["ut_pex"] = Self.peerExchangeExtensionID }
        handshake.listenPort = options.announcedPort ?? boundAddress?.port
        let bytes = handshake.encoded()
        extensionHandshakeBytes = bytes
        return bytes
    }

    /// What a peer's extension handshake says about metadata: where to send our answers.
    func peerExtensionsKnown(_ handshake: ExtensionHandshake, link: PeerLink) {
        let id = handshake.extensions["ut_metadata"] ?? 0
        link.peerMetadataExtensionID = id == 0 ? nil : id
    }

    /// A `ut_metadata` message from `link`. Requests are answered, within the per-connection allowance
    /// of `MetadataServer`; pieces and rejects are ignored (we never ask: we have the metadata). A
    /// message that does not decode ends the connection, like any other protocol violation.
    func metadataMessageReceived(_ payload: [UInt8], link: PeerLink, now: UInt64) {
        let message: MetadataMessage
        do {
            message = try MetadataMessage(decoding: payload)
        } catch .unknownMessageType {
            return  // BEP 9: for extensions to come
        } catch {
            disconnect(link, reason: "protocol: ut_metadata: \(error)", now: now)
            return
        }
        guard case .request(let piece) = message, let peerID = link.peerMetadataExtensionID else { return }
        let answer: MetadataMessage
        if link.metadataServer == nil { link.metadataServer = metadataServer }
        if var server = link.metadataServer {
            answer = server.answer(requestFor: piece, now: Instant(nanoseconds: now))
            link.metadataServer = server
        } else {
            answer = .reject(piece: piece)
        }
        _ = link.connection.sendExtended(id: peerID, payload: answer.encoded().span)
    }
}
