import Foundation
import Testing

/// Torrents made by Potluck and by the other tools, read by each other (real programs from Debian).
@Suite(.serialized) struct CreateInteropTests {
    /// A folder of files with awkward sizes (not multiples of any piece size, an empty file, nesting).
    static func makePayload() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-create-\(UUID())")
        let folder = root.appendingPathComponent("payload")
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("nested/deeper"), withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        for (path, size) in [
            ("a.bin", 1_234_567), ("nested/b.bin", 65_536 * 3 + 1), ("nested/deeper/c.txt", 17), ("empty", 0),
        ] {
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            try Data(bytes).write(to: folder.appendingPathComponent(path))
        }
        return folder
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = readAll(pipe.fileHandleForReading)
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func potluckInfoHash(_ torrent: String) throws -> String? {
        let info = try runPotluck(["info", "--json", torrent])
        #expect(info.status == 0, "\(info.error)")
        let object = try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any]
        return object?["infohash_v1"] as? String
    }

    static func transmissionShowHash(_ torrent: String) throws -> String? {
        let shown = try run("/usr/bin/transmission-show", [torrent])
        #expect(shown.status == 0)
        return shown.output.split(separator: "\n").first { $0.contains("Hash:") }
            .map { $0.split(separator: " ").last.map(String.init) ?? "" }
    }

    @Test(arguments: [16, 18, 20])
    func mktorrentTorrentsLoadWithTheirInfohash(pieceSizeExponent: Int) throws {
        let payload = try Self.makePayload()
        defer { try? FileManager.default.removeItem(at: payload.deletingLastPathComponent()) }
        let torrent = payload.deletingLastPathComponent().appendingPathComponent("mk.torrent").path
        let made = try Self.run(
            "/usr/bin/mktorrent",
            [
                "-l", "\(pieceSizeExponent)", "-a", "http://127.0.0.1:6969/announce", "-o", torrent,
                payload.path,
            ])
        #expect(made.status == 0)
        let expected = try Self.transmissionShowHash(torrent)
        #expect(expected?.count == 40)
        #expect(try Self.potluckInfoHash(torrent) == expected)
    }

    /// A piece over two thousand tiny files: reads are started a few dozen at a time and each file is
    /// closed after its last read, so a low open-file limit is no obstacle (this once stopped on a
    /// precondition: every read of the pieces in flight had to fit one table). mktorrent, given the
    /// same piece size, makes the same torrent.
    @Test func manySmallFilesUnderALowOpenFileLimitMatchMktorrent() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-small-\(UUID())")
        let folder = root.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        for index in 0..<2000 {
            try Data("file \(index)\n".utf8).write(to: folder.appendingPathComponent("f\(index)"))
        }
        let ours = root.appendingPathComponent("potluck.torrent").path
        let theirs = root.appendingPathComponent("mk.torrent").path
        let created = try Self.run(
            "/bin/sh",
            [
                "-c", "ulimit -n 100 && exec \"$0\" \"$@\" 2>&1", potluckExecutable().path, "create", "-q",
                "--piece-size", "32K", "-o", ours, folder.path,
            ])
        #expect(created.status == 0, "\(created.output)")
        #expect(try Self.run("/usr/bin/mktorrent", ["-l", "15", "-o", theirs, folder.path]).status == 0)
        let expected = try Self.transmissionShowHash(theirs)
        #expect(expected?.count == 40)
        #expect(try Self.potluckInfoHash(ours) == expected)
    }

    @Test func transmissionCreateTorrentsLoadWithTheirInfohash() throws {
        let payload = try Self.makePayload()
        defer { try? FileManager.default.removeItem(at: payload.deletingLastPathComponent()) }
        let torrent = payload.deletingLastPathComponent().appendingPathComponent("tc.torrent").path
        let made = try Self.run("/usr/bin/transmission-create", ["-s", "32", "-o", torrent, payload.path])
        #expect(made.status == 0)
        let expected = try Self.transmissionShowHash(torrent)
        #expect(expected?.count == 40)
        #expect(try Self.potluckInfoHash(torrent) == expected)
    }

    @Test func potluckV1TorrentsShowTheSameInfohashInTransmission() throws {
        let payload = try Self.makePayload()
        defer { try? FileManager.default.removeItem(at: payload.deletingLastPathComponent()) }
        let torrent = payload.deletingLastPathComponent().appendingPathComponent("potluck.torrent").path
        let created = try runPotluck([
            "create", "--quiet", "--v1", "--piece-size", "32K", "-o", torrent, payload.path,
        ])
        #expect(created.status == 0, "\(created.error)")
        let line = created.output.split(separator: "\n").first { $0.contains("infohash v1:") }
        let reported = line?.split(separator: " ").last.map(String.init)
        #expect(reported?.count == 40)
        #expect(try Self.transmissionShowHash(torrent) == reported)
        #expect(try Self.potluckInfoHash(torrent) == reported)
    }

    @Test func createRefusesToOverwriteAndExplainsBadInput() throws {
        let payload = try Self.makePayload()
        defer { try? FileManager.default.removeItem(at: payload.deletingLastPathComponent()) }
        let torrent = payload.deletingLastPathComponent().appendingPathComponent("x.torrent").path
        #expect(try runPotluck(["create", "-q", "-o", torrent, payload.path]).status == 0)
        let again = try runPotluck(["create", "-q", "-o", torrent, payload.path])
        #expect(again.status == 1)
        #expect(again.error.contains("exists; use --force"))
        let missing = try runPotluck(["create", "-q", "-o", torrent + "2", payload.path + "/nothing-here"])
        #expect(missing.status == 1)
        #expect(missing.error.contains("No such file or directory"))
        let badSize = try runPotluck(["create", "--piece-size", "3000", payload.path])
        #expect(badSize.status != 0)
        #expect(badSize.error.contains("power of two"))
    }

    @Test func infoRejectsHostileTorrentsWithAReason() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "potluck-info-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A multi-file torrent whose file path climbs out of the download folder.
        let pieces = String(repeating: "a", count: 20)
        let hostile =
            "d4:infod5:filesld6:lengthi5e4:pathl2:..6:escapeeee4:name1:x12:piece lengthi16384e6:pieces20:\(pieces)ee"
        let path = directory.appendingPathComponent("hostile.torrent").path
        try Data(hostile.utf8).write(to: URL(fileURLWithPath: path))
        let result = try runPotluck(["info", path])
        #expect(result.status == 1)
        #expect(result.error.contains("'..'"), "\(result.error)")
    }
}

/// libtorrent (Debian's python3-libtorrent, through the interop harness) reading Potluck's torrents and
/// Potluck reading libtorrent's: same infohashes both ways, and libtorrent verifies the data against
/// Potluck's hashes.
@Suite(.serialized) struct LibtorrentCreateInteropTests {
    static let harness = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Interop/lt.py").path

    static func libtorrent(_ arguments: [String]) throws -> (status: Int32, json: [String: Any]) {
        let result = try CreateInteropTests.run("/usr/bin/python3", [harness] + arguments)
        let object = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        return (result.status, object ?? [:])
    }

    static func potluckInfo(_ torrent: String) throws -> [String: Any] {
        let info = try runPotluck(["info", "--json", torrent])
        #expect(info.status == 0, "\(info.error)")
        return (try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any]) ?? [:]
    }

    @Test(arguments: ["v1", "v2", "hybrid"])
    func potluckTorrentsLoadAndVerifyInLibtorrent(format: String) throws {
        let payload = try CreateInteropTests.makePayload()
        defer { try? FileManager.default.removeItem(at: payload.deletingLastPathComponent()) }
        let torrent = payload.deletingLastPathComponent().appendingPathComponent("potluck-\(format).torrent")
            .path
        let created = try runPotluck([
            "create", "-q", "--\(format)", "--piece-size", "64K", "-o", torrent, payload.path,
        ])
        #expect(created.status == 0, "\(created.error)")
        let ours = try Self.potluckInfo(torrent)
        let theirs = try Self.libtorrent(["info", torrent])
        #expect(theirs.status == 0)
        #expect(theirs.json["infohash_v1"] as? String == ours["infohash_v1"] as? String)
        #expect(theirs.json["infohash_v2"] as? String == ours["infohash_v2"] as? String)
        #expect((ours["infohash_v1"] ?? ours["infohash_v2"]) != nil)
        let verified = try Self.libtorrent(["verify", torrent, payload.deletingLastPathComponent().path])
        #expect(
            verified.status == 0, "libtorrent rejected the data against Potluck's hashes: \(verified.json)")
        #expect((verified.json["verified"] as? Int) == (verified.json["pieces"] as? Int))
    }

    @Test(arguments: ["v1", "v2", "hybrid"])
    func libtorrentTorrentsLoadWithTheirInfohash(format: String) throws {
        let payload = try CreateInteropTests.makePayload()
        defer { try? FileManager.default.removeItem(at: payload.deletingLastPathComponent()) }
        let torrent = payload.deletingLastPathComponent().appendingPathComponent("lt-\(format).torrent").path
        let made = try Self.libtorrent([
            "create", payload.path, "-o", torrent, "--\(format)", "--piece-size", "32768",
        ])
        #expect(made.status == 0)
        let ours = try Self.potluckInfo(torrent)
        #expect(ours["infohash_v1"] as? String == made.json["infohash_v1"] as? String)
        #expect(ours["infohash_v2"] as? String == made.json["infohash_v2"] as? String)
    }
}
