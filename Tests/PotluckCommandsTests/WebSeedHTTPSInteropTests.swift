import Foundation
import Testing

@testable import PotluckBench

/// `https` web seeds (BEP 19) against nginx serving TLS with a certificate from a CA the test makes
/// (openssl), trusted with `--web-seed-ca`; alone, beside a libtorrent seeder, behind an http redirect,
/// and refused when the certificate cannot be trusted for the host.
@Suite(.serialized) struct WebSeedHTTPSInteropTests {
    /// A CA and a server certificate it signed for `names` (subjectAltName entries), in `folder`.
    struct Certificates {
        let ca: String
        let certificate: String
        let key: String

        init(in folder: URL, names: String) throws {
            ca = folder.appendingPathComponent("ca.pem").path
            let caKey = folder.appendingPathComponent("ca-key.pem").path
            certificate = folder.appendingPathComponent("server.pem").path
            key = folder.appendingPathComponent("server-key.pem").path
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"]
            let madeCA = try ExternalCommand.run(
                "/usr/bin/openssl",
                ["req", "-x509"] + ec + ["-keyout", caKey, "-out", ca, "-subj", "/CN=Potluck test CA"])
            try #require(madeCA.status == 0, "openssl could not make a CA")
            let madeServer = try ExternalCommand.run(
                "/usr/bin/openssl",
                ["req", "-x509", "-CA", ca, "-CAkey", caKey] + ec + [
                    "-keyout", key, "-out", certificate, "-subj", "/CN=web seed",
                    "-addext", "subjectAltName=\(names)", "-addext", "basicConstraints=critical,CA:FALSE",
                ])
            try #require(madeServer.status == 0, "openssl could not make a server certificate")
        }
    }

    /// nginx serving `root` over https with `certificates`: its https URL, the http URL that redirects
    /// there, and its access log.
    static func nginx(
        serving root: URL, certificates: Certificates
    ) throws -> (process: BackgroundProcess, url: String, redirect: String, accessLog: String) {
        let server = try harnessProcess([
            Interop.tool("nginx_webseed.py"), root.path, "--tls", certificates.certificate, certificates.key,
        ])
        let url = server.ready?["url"] as? String ?? ""
        #expect(url.hasPrefix("https://127.0.0.1:"), "nginx did not start (is nginx-light installed?)")
        return (
            server, url, server.ready?["redirect"] as? String ?? "",
            server.ready?["access_log"] as? String ?? ""
        )
    }

    /// The answers nginx logged: (connection, requests on it so far, status) per request.
    static func requests(in accessLog: String) -> [(connection: Int, count: Int, status: Int)] {
        let text = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").compactMap { Int($0) }
            return fields.count == 3 ? (fields[0], fields[1], fields[2]) : nil
        }
    }

    /// A single-file torrent from nginx alone over https, reached by host name (SNI and the name check).
    @Test func singleFileByHostName() throws {
        let (root, file) = try Interop.makePayload(sizes: [3_000_001], single: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let certificates = try Certificates(in: root, names: "DNS:localhost")
        let (server, url, _, _) = try Self.nginx(
            serving: file.deletingLastPathComponent(), certificates: certificates)
        defer { server.stop() }
        let byName = url.replacingOccurrences(of: "127.0.0.1", with: "localhost") + "single.bin"
        let torrent = try WebSeedInteropTests.create(file, webSeed: byName)
        let target = root.appendingPathComponent("download")
        let result = try WebSeedInteropTests.download(
            torrent, into: target, extra: ["--web-seed-ca", certificates.ca])
        #expect(result.status == 0, "\(result.error)")
        #expect(
            FileManager.default.contentsEqual(
                atPath: file.path, andPath: target.appendingPathComponent("single.bin").path))
        #expect(
            result.error.contains("web seed \(byName) totals: received 3000001 payload bytes"),
            "\(result.error)")
    }

    /// A multi-file torrent from nginx alone over https, by address: the ranges (at least one per file)
    /// travel on few keep-alive connections.
    @Test(arguments: ["v1", "hybrid"])
    func multiFileByAddress(format: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_001, 700_000, 262_144, 5])
        defer { try? FileManager.default.removeItem(at: root) }
        let certificates = try Certificates(in: root, names: "IP:127.0.0.1")
        let (server, url, _, accessLog) = try Self.nginx(
            serving: data.deletingLastPathComponent(), certificates: certificates)
        defer { server.stop() }
        let torrent = try WebSeedInteropTests.create(data, webSeed: url, format: format)
        let target = root.appendingPathComponent("download")
        let result = try WebSeedInteropTests.download(
            torrent, into: target, extra: ["--web-seed-ca", certificates.ca])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(!result.error.contains(": dropped:"), "\(result.error)")
        let answers = Self.requests(in: accessLog)
        #expect(answers.count >= 4 && answers.allSatisfy { $0.status == 206 }, "\(answers)")
        #expect(answers.contains { $0.count > 1 }, "no connection carried a second request: \(answers)")
        // BEP 19 gap picking: the 61 pieces of 64 KiB travel in long runs, not a range each.
        #expect(answers.count <= 20, "\(answers.count) requests")
    }

    /// nginx over https and a libtorrent seeder serve one download together: each sends part of it.
    @Test func togetherWithLibtorrent() throws {
        // Large enough for the https seed, which starts once its certificate store has loaded (off the
        // reactor), to join a libtorrent seeder that starts at once.
        let (root, data) = try Interop.makePayload(sizes: [40_000_000, 8_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let certificates = try Certificates(in: root, names: "IP:127.0.0.1")
        let (server, url, _, _) = try Self.nginx(
            serving: data.deletingLastPathComponent(), certificates: certificates)
        defer { server.stop() }
        let torrent = try WebSeedInteropTests.create(data, webSeed: url)
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let peers = seeder.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 1)
        let target = root.appendingPathComponent("download")
        let result = try WebSeedInteropTests.download(
            torrent, into: target,
            extra: ["--web-seed-ca", certificates.ca] + peers.flatMap { ["--peer", $0] })
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("web seed \(url) totals: received "), "\(result.error)")
        #expect(result.error.contains("peer \(peers.first ?? "?") totals: received "), "\(result.error)")
        #expect(!result.error.contains(": dropped:"), "\(result.error)")
    }

    /// The torrent names an http URL that redirects to https: the redirect is followed.
    @Test func httpRedirectedToHTTPS() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_000_000, 300_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let certificates = try Certificates(in: root, names: "IP:127.0.0.1")
        let (server, url, redirect, _) = try Self.nginx(
            serving: data.deletingLastPathComponent(), certificates: certificates)
        defer { server.stop() }
        let torrent = try WebSeedInteropTests.create(data, webSeed: redirect)
        let target = root.appendingPathComponent("download")
        let result = try WebSeedInteropTests.download(
            torrent, into: target, extra: ["--web-seed-ca", certificates.ca])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(
            result.error.contains(
                "web seed \(redirect): \(redirect)payload/file0.bin redirected to \(url)payload/file0.bin"),
            "\(result.error)")
        #expect(!result.error.contains(": dropped:"), "\(result.error)")
    }

    /// A certificate from a CA nobody trusts, or one that names another host, is refused (said once,
    /// with OpenSSL's reason); a libtorrent seeder delivers the download.
    @Test(arguments: [
        ("IP:127.0.0.1", false, "certificate verify failed: unable to get local issuer certificate"),
        ("DNS:elsewhere.example", true, "certificate verify failed: IP address mismatch"),
    ])
    func untrustedCertificateIsRefused(names: String, trustCA: Bool, logged: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [4_000_000, 300_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let certificates = try Certificates(in: root, names: names)
        let (server, url, _, _) = try Self.nginx(
            serving: data.deletingLastPathComponent(), certificates: certificates)
        defer { server.stop() }
        let torrent = try WebSeedInteropTests.create(data, webSeed: url)
        // A peer at 4 MB/s leaves the https seed (whose certificate store loads off the reactor
        // first) time to take part.
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--upload-rate",
            "4000000",
        ])
        defer { seeder.stop() }
        let peers = seeder.ready?["peers"] as? [String] ?? []
        let target = root.appendingPathComponent("download")
        let trust = trustCA ? ["--web-seed-ca", certificates.ca] : []
        let result = try WebSeedInteropTests.download(
            torrent, into: target, extra: trust + peers.flatMap { ["--peer", $0] })
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        let drops = result.error.components(separatedBy: "\n").filter {
            $0.contains("web seed \(url): dropped")
        }
        #expect(drops.count == 1, "\(result.error)")
        let origin = String(url.dropLast())
        #expect(drops.first?.hasSuffix("dropped: TLS with \(origin): \(logged)") == true, "\(result.error)")
        #expect(!result.error.contains("web seed \(url) totals"), "\(result.error)")
    }
}
