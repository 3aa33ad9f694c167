import Testing
import TorrentModel
import TransmissionRPC

/// Builds endpoints over an ``InMemoryBackend`` and talks to them the way clients do.
struct RPCHarness {
    static let sessionID = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL"

    let backend: InMemoryBackend
    let endpoint: RPCEndpoint

    init(torrents: [TorrentSnapshot] = [], policy: AccessPolicy = AccessPolicy()) {
        backend = InMemoryBackend(torrents: torrents)
        endpoint = RPCEndpoint(
            policy: policy, backend: backend, identity: ServerIdentity(potluckVersion: "0.2.0"),
            sessionID: Self.sessionID)
    }

    /// A POST from localhost carrying the session id, as a client sends after its first 409.
    static func post(
        _ body: String, headers: HTTPHeaderFields? = nil, from address: String = "127.0.0.1"
    )
        -> RPCHTTPRequest
    {
        RPCHTTPRequest(
            method: "POST", target: "/transmission/rpc",
            headers: headers ?? ["Host": "localhost:9091", Gatekeeper.sessionIDHeader: sessionID],
            body: Array(body.utf8), remoteAddress: address)
    }

    /// The JSON reply to a request body; fails the test when the reply is not a JSON object.
    func call(_ body: String) async throws -> [String: JSONValue] {
        let response = await endpoint.respond(to: Self.post(body))
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/json; charset=UTF-8")
        return try #require(JSONValue(parsing: response.body)?.objectValue)
    }
}

extension InfoHash {
    /// A hash made of one repeated byte, for readable test torrents.
    static func repeating(_ byte: UInt8) -> InfoHash { InfoHash([UInt8](repeating: byte, count: 20))! }
}

extension TorrentSnapshot {
    /// Two torrents shaped like the spec's example: Ubuntu (#7) and Fedora (#10).
    static var examples: [TorrentSnapshot] {
        var ubuntu = TorrentSnapshot(id: 7, hash: .repeating(0x07), name: "Ubuntu x86_64 DVD")
        ubuntu.totalSize = 9_923_890_123
        ubuntu.sizeWhenDone = 9_923_890_123
        ubuntu.leftUntilDone = 1_000
        ubuntu.status = .downloading
        ubuntu.rateDownload = 250_000
        ubuntu.uploadRatio = 0.5
        ubuntu.files = [
            FileSnapshot(name: "ubuntu/ubuntu.iso", length: 9_923_890_000, bytesCompleted: 9_923_889_000),
            FileSnapshot(name: "ubuntu/SHA256SUMS", length: 123, wanted: false, priority: .low),
        ]
        ubuntu.trackers = [
            TrackerSnapshot(id: 0, announce: "https://a.example/announce", tier: 0),
            TrackerSnapshot(id: 1, announce: "udp://b.example:6969", tier: 0),
            TrackerSnapshot(id: 2, announce: "https://c.example/announce", tier: 1),
        ]
        var fedora = TorrentSnapshot(id: 10, hash: .repeating(0x0a), name: "Fedora x86_64 DVD")
        fedora.totalSize = 34_983_493_932
        fedora.status = .seeding
        fedora.isFinished = true
        fedora.labels = ["linux", "iso"]
        return [ubuntu, fedora]
    }
}
