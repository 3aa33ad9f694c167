import Locking
import Testing
import TransmissionRPC

/// What monitoring learns of each call: the method only when it is one the RPC knows, so a client
/// cannot invent labels, and whether the call succeeded.
@Suite struct CallMonitoringTests {
    final class Calls: Sendable {
        let seen = Lock<[String]>([])
    }

    @Test func everyAnsweredCallIsReportedWithAKnownMethodOrNone() async throws {
        let calls = Calls()
        var endpoint = RPCHarness(torrents: TorrentSnapshot.examples).endpoint
        endpoint.callAnswered = { method, succeeded in
            calls.seen.withLock { $0.append("\(method ?? "-") \(succeeded)") }
        }
        for body in [
            #"{"method":"session-get"}"#, #"{"method":"torrent-get","arguments":{"fields":["id"]}}"#,
            #"{"method":"torrent-stop","arguments":{"ids":[7]}}"#, #"{"method":"made-up-\#(UInt64.max)"}"#,
            #"{"method":"torrent-get","arguments":{"fields":7}}"#, "not json",
        ] {
            _ = await endpoint.respond(to: RPCHarness.post(body))
        }
        #expect(
            calls.seen.withLock { $0 } == [
                "session-get true", "torrent-get true", "torrent-stop true", "- false", "- false", "- false",
            ])
    }

    @Test func methodNamesAreTheNamesThatDecodeToThem() throws {
        for name in [
            "session-get", "session-stats", "session-close", "port-test", "blocklist-update", "torrent-start",
            "torrent-verify", "queue-move-top",
        ] {
            #expect(try RPCRequest(method: name, arguments: [:]).methodName == name)
        }
        #expect(
            try RPCRequest(method: "torrent-get", arguments: ["fields": .array([])]).methodName
                == "torrent-get")
    }
}
