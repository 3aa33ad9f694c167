import Testing
import TorrentModel
import TransmissionRPC

/// torrent-get's reply is written straight from the snapshots, or from the rows a backend kept: the
/// bytes are those of the same reply made as a `JSONValue` (`reply(toBody:)`) and written by
/// `JSONValue.serialized`.
@Suite struct TorrentListWritingTests {
    /// The examples, and one with what a writer might get wrong: escapes, non-ASCII text, negative and
    /// non-finite numbers, peers, labels, web seeds.
    static var torrents: [TorrentSnapshot] {
        var odd = TorrentSnapshot(id: 12, hash: .repeating(0xfe), name: "a \"quoted\"\\ name\n\t日本語 🎉 /x")
        odd.errorString = "tracker said \u{1}no\u{1f}"
        odd.error = .trackerError
        odd.uploadRatio = .infinity
        odd.percentDone = 1.0 / 3
        odd.recheckProgress = .nan
        odd.eta = -2
        odd.rateUpload = Int.max
        odd.downloadedEver = 0
        odd.uploadedEver = 1234567890123
        odd.labels = ["ü", "a,b"]
        odd.webseeds = ["https://w.example/x"]
        odd.peers = [PeerSnapshot(address: "10.0.0.1", port: 6881)]
        odd.queuePosition = 3
        return TorrentSnapshot.examples + [odd]
    }

    static let everyField = TorrentField.allCases.map { #""\#($0.rawValue)""# }.joined(separator: ",")
    /// Written from the rows the backend keeps (`torrentRows`).
    static let listFields = TorrentField.allCases.filter(TorrentField.listFields.contains).map {
        #""\#($0.rawValue)""#
    }.joined(separator: ",")

    @Test(arguments: [
        #"{"method":"torrent-get","arguments":{"fields":[\#(everyField)]},"tag":7}"#,
        #"{"method":"torrent-get","arguments":{"fields":[\#(everyField)],"format":"table"}}"#,
        #"{"method":"torrent-get","arguments":{"fields":["name","id","name","status"],"format":"table"},"tag":"x"}"#,
        #"{"method":"torrent-get","arguments":{"fields":["uploadRatio","id","id","peer-limit","error"]}}"#,
        #"{"method":"torrent-get","arguments":{"fields":["id","name"],"ids":"recently-active"},"tag":1.5}"#,
        #"{"method":"torrent-get","arguments":{"fields":["id"],"ids":[99]}}"#,
        #"{"method":"torrent-get","arguments":{"fields":[\#(listFields)]}}"#,
        #"{"method":"torrent-get","arguments":{"format":"table","fields":[\#(listFields)],"ids":[10,12]}}"#,
        #"{"method":"torrent-get","arguments":{"fields":[],"format":"table"}}"#,
        #"{"method":"torrent-get","arguments":{"fields":[]}}"#,
        #"{"method":"torrent-get","arguments":{"fields":"bad"}}"#,
    ])
    func writtenAsTheValueWouldBe(_ body: String) async throws {
        let harness = RPCHarness(torrents: Self.torrents)
        await harness.backend.markRecentlyActive([10, 12])
        _ = try await harness.call(#"{"method":"torrent-remove","arguments":{"ids":[7]}}"#)
        let written = await harness.endpoint.respond(to: RPCHarness.post(body)).body
        let value = await harness.endpoint.reply(toBody: Array(body.utf8))
        #expect(String(decoding: written, as: UTF8.self) == String(decoding: value.serialized, as: UTF8.self))
    }

    @Test func otherMethodsAsBefore() async throws {
        let harness = RPCHarness(torrents: Self.torrents)
        for body in [
            #"{"method":"session-get","arguments":{"fields":["version","rpc-version"]},"tag":3}"#,
            #"{"method":"torrent-start","arguments":{"ids":[10]}}"#, #"{"method":"nonsense"}"#, "not json",
        ] {
            let written = await harness.endpoint.respond(to: RPCHarness.post(body)).body
            let value = await harness.endpoint.reply(toBody: Array(body.utf8))
            #expect(
                String(decoding: written, as: UTF8.self) == String(decoding: value.serialized, as: UTF8.self))
        }
    }
}
