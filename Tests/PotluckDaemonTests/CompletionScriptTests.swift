import Foundation
import Logging
import Testing

@testable import PotluckDaemon

/// The on-completion program gets Transmission's variables and is started without a shell.
@Suite struct CompletionScriptTests {
    static let torrent = CompletedTorrent(
        id: 7, hash: "0123456789abcdef0123456789abcdef01234567", name: "a name; with $(shell) words",
        directory: FileManager.default.temporaryDirectory.path, labels: ["tv", "hd"])

    @Test func environmentHasTransmissionsVariablesOverTheDaemons() {
        let environment = CompletionScript.environment(
            for: Self.torrent, now: Date(timeIntervalSince1970: 1_700_000_000),
            base: ["PATH": "/usr/bin", "TR_TORRENT_ID": "stale"])
        #expect(environment["PATH"] == "/usr/bin")
        #expect(environment["TR_TORRENT_ID"] == "7")
        #expect(environment["TR_TORRENT_HASH"] == "0123456789abcdef0123456789abcdef01234567")
        #expect(environment["TR_TORRENT_NAME"] == "a name; with $(shell) words")
        #expect(environment["TR_TORRENT_DIR"] == FileManager.default.temporaryDirectory.path)
        #expect(environment["TR_TORRENT_LABELS"] == "tv,hd")
        #expect(environment["TR_APP_VERSION"] == "4.0.6")
        // ctime's shape in the local zone, such as "Tue Nov 14 22:13:20 2023": 24 characters.
        let time = environment["TR_TIME_LOCALTIME"] ?? ""
        #expect(time.count == 24 && time.hasSuffix("2023"), "\(time)")
    }

    @Test func theProgramRunsWithTheNameAsData() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-done-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = folder.appendingPathComponent("done.sh")
        try Data(
            """
            #!/bin/sh
            printf '%s|%s|%s\\n' "$TR_TORRENT_ID" "$TR_TORRENT_NAME" "$PWD" > "$TR_TORRENT_DIR/ran.txt"

            """.utf8
        ).write(to: script)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        let torrent = CompletedTorrent(
            id: 7, hash: Self.torrent.hash, name: Self.torrent.name, directory: folder.path, labels: [])
        CompletionScript.run(script.path, for: torrent, logger: Logger(label: "test"))
        let output = folder.appendingPathComponent("ran.txt")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && (try? String(contentsOf: output, encoding: .utf8))?.hasSuffix("\n") != true
        {
            usleep(20_000)
        }
        let line = try String(contentsOf: output, encoding: .utf8)
        #expect(line == "7|a name; with $(shell) words|\(folder.path)\n")
    }
}
