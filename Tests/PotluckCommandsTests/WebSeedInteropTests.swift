import Foundation
import Testing

@testable import PotluckBench

/// Web seeds (BEP 19) against real servers: nginx serving the files, a libtorrent seeder beside it, and
/// `odd_webseed.py` for servers that misbehave in one way each.
@Suite(.serialized) struct WebSeedInteropTests {
    /// A torrent of `data` listing `webSeed` in its url-list, beside the payload's scratch folder.
    static func create(_ data: URL, webSeed: String, format: String = "v1") throws -> String {
        let torrent = data.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("t.torrent").path
        let made = try runPotluck([
            "create", "-q", "--force", "--\(format)", "--piece-size", "64K", "--web-seed", webSeed, "-o",
            torrent,
            data.path,
        ])
        #expect(made.status == 0, "\(made.error)")
        return torrent
    }

    /// `potluck download --verbose` with `extra`, given two minutes at most (a seed that stalls the
    /// download fails the test instead of hanging it).
    static func download(
        _ torrent: String, into directory: URL, extra: [String] = []
    ) throws -> (status: Int32, output: String, error: String) {
        try runPotluck(
            ["120", potluckExecutable().path, "download", "-q", "--verbose", torrent, "-o", directory.path]
                + extra,
            executable: URL(fileURLWithPath: "/usr/bin/timeout"))
    }

    /// nginx serving `root` (the payload's parent folder) on a free loopback port.
    static func nginx(serving root: URL) throws -> (process: BackgroundProcess, url: String) {
        let server = try harnessProcess([Interop.tool("nginx_webseed.py"), root.path])
        let url = server.ready?["url"] as? String ?? ""
        #expect(url.hasPrefix("http://127.0.0.1:"), "nginx did not start (is nginx-light installed?)")
        return (server, url)
    }

    /// A single-file torrent from nginx alone, its url-list the file itself or the folder holding it.
    @Test(arguments: [false, true])
    func singleFileFromNginxAlone(urlIsFolder: Bool) throws {
        let (root, file) = try Interop.makePayload(sizes: [3_000_001], single: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let (server, url) = try Self.nginx(serving: file.deletingLastPathComponent())
        defer { server.stop() }
        let torrent = try Self.create(file, webSeed: urlIsFolder ? url : url + "single.bin")
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target)
        #expect(result.status == 0, "\(result.error)")
        #expect(
            FileManager.default.contentsEqual(
                atPath: file.path, andPath: target.appendingPathComponent("single.bin").path))
        #expect(!result.error.contains(": dropped:"), "\(result.error)")
    }

    /// A multi-file torrent (files in a subfolder, a file smaller than a block; hybrid: padding files,
    /// which are never asked for) from nginx alone.
    @Test(arguments: ["v1", "hybrid"])
    func multiFileFromNginxAlone(format: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_001, 700_000, 262_144, 5])
        defer { try? FileManager.default.removeItem(at: root) }
        let (server, url) = try Self.nginx(serving: data.deletingLastPathComponent())
        defer { server.stop() }
        let torrent = try Self.create(data, webSeed: url, format: format)
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target)
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(!result.error.contains(": dropped:"), "\(result.error)")
    }

    /// nginx and a libtorrent seeder serve one download together: each sends part of it.
    @Test func nginxTogetherWithLibtorrent() throws {
        let (root, data) = try Interop.makePayload(sizes: [12_000_000, 3_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let (server, url) = try Self.nginx(serving: data.deletingLastPathComponent())
        defer { server.stop() }
        let torrent = try Self.create(data, webSeed: url)
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let peers = seeder.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 1)
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target, extra: peers.flatMap { ["--peer", $0] })
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("web seed \(url) totals: received "), "\(result.error)")
        #expect(result.error.contains("peer \(peers.first ?? "?") totals: received "), "\(result.error)")
        #expect(!result.error.contains(": dropped:"), "\(result.error)")
    }

    /// A busy server, or one that drops connections mid-body, rests and is asked again: the download
    /// completes from it alone. The torrent's own url-list names a dead port: `--no-web-seeds` keeps it
    /// out, `--web-seed` brings the odd server in.
    @Test(arguments: [
        ("busy", "busy (HTTP 503/429); trying again in 1 s"),
        ("close", "connection closed after 32768 of 65536 body bytes; trying again in 1 s"),
    ])
    func flakyServerIsRetried(mode: String, logged: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [1_000_000, 300_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try harnessProcess([
            Interop.tool("odd_webseed.py"), mode, data.deletingLastPathComponent().path,
        ])
        defer { server.stop() }
        let url = server.ready?["url"] as? String ?? ""
        let torrent = try Self.create(data, webSeed: "http://127.0.0.1:1/")
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target, extra: ["--no-web-seeds", "--web-seed", url])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("web seed \(url): \(logged)"), "\(result.error)")
        #expect(!result.error.contains("127.0.0.1:1/"), "\(result.error)")
    }

    /// A server that ignores ranges, or sends wrong bytes, is dropped (said once); a libtorrent seeder
    /// delivers the download.
    @Test(arguments: [
        ("ignore-range", "dropped: answered 200 (the whole file of 8000000 bytes) to a request for bytes"),
        ("wrong-bytes", "which failed its hash check"),
    ])
    func badServerIsDropped(mode: String, logged: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [8_000_000, 300_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try harnessProcess([
            Interop.tool("odd_webseed.py"), mode, data.deletingLastPathComponent().path,
        ])
        defer { server.stop() }
        let url = server.ready?["url"] as? String ?? ""
        let torrent = try Self.create(data, webSeed: url)
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let peers = seeder.ready?["peers"] as? [String] ?? []
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target, extra: peers.flatMap { ["--peer", $0] })
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        let drops = result.error.components(separatedBy: "\n").filter {
            $0.contains("web seed \(url): dropped")
        }
        #expect(drops.count == 1, "\(result.error)")
        #expect(drops.first?.contains(logged) == true, "\(result.error)")
    }
}
