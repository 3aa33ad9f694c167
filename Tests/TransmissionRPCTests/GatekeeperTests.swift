import Foundation
import Testing
import TransmissionRPC

@Suite struct GatekeeperTests {
    let body = #"{"method":"session-get","tag":1}"#

    @Test func firstRequestGets409WithTheSessionIDAndTheRetrySucceeds() async throws {
        let harness = RPCHarness()
        let first = RPCHTTPRequest(
            method: "POST", target: "/transmission/rpc", headers: ["Host": "localhost:9091"],
            body: Array(body.utf8), remoteAddress: "127.0.0.1")
        let refused = await harness.endpoint.respond(to: first)
        #expect(refused.status == 409)
        let token = try #require(refused.headers["x-transmission-session-id"])
        #expect(token == RPCHarness.sessionID)

        var retry = first
        retry.headers.append(name: "X-Transmission-Session-Id", value: token)
        let accepted = await harness.endpoint.respond(to: retry)
        #expect(accepted.status == 200)
        #expect(accepted.headers[Gatekeeper.sessionIDHeader] == nil)
    }

    @Test func wrongSessionIDIsRefusedOnEveryPathUnderTheRPC() async {
        let harness = RPCHarness()
        for target in ["/transmission/rpc", "/transmission/rpc/", "/transmission/rpc?x=1"] {
            let request = RPCHTTPRequest(
                method: "POST", target: target,
                headers: ["Host": "localhost", Gatekeeper.sessionIDHeader: "stale"],
                body: Array(body.utf8), remoteAddress: "::1")
            let response = await harness.endpoint.respond(to: request)
            #expect(response.status == 409, "\(target)")
        }
    }

    @Test func randomSessionIDsAreLongAndDiffer() {
        let a = Gatekeeper.randomSessionID()
        let b = Gatekeeper.randomSessionID()
        #expect(a.count == 48)
        #expect(a.allSatisfy { $0.isLetter || $0.isNumber })
        #expect(a != b)
    }

    @Test func basicAuthIsRequiredWhenConfigured() async {
        let policy = AccessPolicy(credentials: .init(username: "alice", password: "p:ss wörd"))
        let harness = RPCHarness(policy: policy)
        let missing = await harness.endpoint.respond(to: RPCHarness.post(body))
        #expect(missing.status == 401)
        #expect(missing.headers["WWW-Authenticate"] == #"Basic realm="Transmission""#)

        func authorized(_ credentials: String) -> RPCHTTPRequest {
            let encoded = Data(credentials.utf8).base64EncodedString()
            return RPCHarness.post(
                body,
                headers: [
                    "Host": "localhost", "Authorization": "Basic \(encoded)",
                    Gatekeeper.sessionIDHeader: RPCHarness.sessionID,
                ])
        }
        #expect(await harness.endpoint.respond(to: authorized("alice:wrong")).status == 401)
        #expect(await harness.endpoint.respond(to: authorized("bob:p:ss wörd")).status == 401)
        #expect(await harness.endpoint.respond(to: authorized("alice:p:ss wörd")).status == 200)
        var bearer = authorized("alice:p:ss wörd")
        bearer.headers = ["Host": "localhost", "Authorization": "Bearer xyz"]
        #expect(await harness.endpoint.respond(to: bearer).status == 401)
    }

    @Test func authIsCheckedBeforeTheSessionIDSoA409NeverLeaksToStrangers() async {
        let harness = RPCHarness(policy: AccessPolicy(credentials: .init(username: "a", password: "b")))
        let request = RPCHarness.post(body, headers: ["Host": "localhost"])
        let response = await harness.endpoint.respond(to: request)
        #expect(response.status == 401)
        #expect(response.headers[Gatekeeper.sessionIDHeader] == nil)
    }

    @Test func hostWhitelistAllowsIPLiteralsLocalhostAndListedNames() {
        let whitelist = WildcardPattern.list("nas.home, *.example.org")
        let allowed = [
            "localhost", "localhost:9091", "LOCALHOST.", "127.0.0.1:9091", "192.168.1.20", "[::1]:9091",
            "[fe80::1]",
            "::1", "nas.home:9091", "torrents.example.org",
        ]
        for host in allowed {
            #expect(Gatekeeper.isAllowed(host: host, by: whitelist), "\(host)")
        }
        for host in ["evil.com", "nas.home.evil.com", "example.org", "[::1", "300.1.1.1", "1.2.3"] {
            #expect(!Gatekeeper.isAllowed(host: host, by: whitelist), "\(host)")
        }
        #expect(!Gatekeeper.isAllowed(host: nil, by: whitelist))
    }

    @Test func unknownHostGets421UnlessAPasswordIsSet() async {
        let rebinding = RPCHarness.post(
            body,
            headers: ["Host": "attacker.example:9091", Gatekeeper.sessionIDHeader: RPCHarness.sessionID])
        #expect(await RPCHarness().endpoint.respond(to: rebinding).status == 421)

        let open = RPCHarness(policy: AccessPolicy(hostWhitelist: nil))
        #expect(await open.endpoint.respond(to: rebinding).status == 200)

        let credentials = AccessPolicy.Credentials(username: "a", password: "b")
        var withAuth = rebinding
        withAuth.headers.append(
            name: "Authorization", value: "Basic " + Data("a:b".utf8).base64EncodedString())
        let passworded = RPCHarness(policy: AccessPolicy(credentials: credentials))
        #expect(await passworded.endpoint.respond(to: withAuth).status == 200)
    }

    @Test func addressWhitelistTakesWildcardsLikeTransmission() async {
        let policy = AccessPolicy(addressWhitelist: WildcardPattern.list("127.0.0.1,192.168.*.*;fd00::*"))
        let harness = RPCHarness(policy: policy)
        for address in ["127.0.0.1", "192.168.4.20", "::ffff:192.168.0.9", "FD00::1"] {
            #expect(
                await harness.endpoint.respond(to: RPCHarness.post(body, from: address)).status == 200,
                "\(address)")
        }
        for address in ["10.0.0.1", "192.169.0.1", "::1", "::ffff:10.0.0.1"] {
            let response = await harness.endpoint.respond(to: RPCHarness.post(body, from: address))
            #expect(response.status == 403, "\(address)")
        }
        let anyone = RPCHarness(policy: AccessPolicy(addressWhitelist: nil))
        #expect(await anyone.endpoint.respond(to: RPCHarness.post(body, from: "203.0.113.9")).status == 200)
    }

    @Test func otherPathsMethodsAndHugeBodiesAreRefused() async {
        let harness = RPCHarness(policy: AccessPolicy(maximumBodyBytes: 64))
        var web = RPCHarness.post(body)
        web.target = "/transmission/web/"
        #expect(await harness.endpoint.respond(to: web).status == 404)

        var get = RPCHarness.post(body)
        get.method = "GET"
        let notAllowed = await harness.endpoint.respond(to: get)
        #expect(notAllowed.status == 405)
        #expect(notAllowed.headers["Allow"] == "POST")

        let huge = RPCHarness.post(
            #"{"method":"torrent-add","arguments":{"metainfo":""# + String(repeating: "A", count: 100)
                + "\"}}")
        #expect(await harness.endpoint.respond(to: huge).status == 413)
        #expect(AccessPolicy().maximumBodyBytes == 16 * 1024 * 1024)
    }

    @Test func wildcardPatternsMatchWholeStringsWithoutCase() {
        #expect(WildcardPattern("192.168.*.*").matches("192.168.10.200"))
        #expect(!WildcardPattern("192.168.*.*").matches("192.168.10"))
        #expect(WildcardPattern("*").matches(""))
        #expect(WildcardPattern("a?c").matches("ABC"))
        #expect(!WildcardPattern("a?c").matches("ac"))
        #expect(WildcardPattern("*.example.*").matches("www.example.org"))
        #expect(!WildcardPattern("127.0.0.1").matches("127.0.0.10"))
        #expect(WildcardPattern.list(" a ,, b;c ").map(\.pattern) == ["a", "b", "c"])
    }
}
