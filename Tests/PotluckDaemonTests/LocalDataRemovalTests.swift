import Foundation
import Testing

@testable import PotluckDaemon

/// torrent-remove with `delete-local-data` deletes the torrent's files and the folders it made, and
/// nothing a symbolic link inside them points at.
@Suite struct LocalDataRemovalTests {
    static func scratch() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-removal-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root
    }

    @Test func removesTheFilesAndTheFoldersLeftEmpty() throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let downloads = root.appendingPathComponent("downloads")
        try FileManager.default.createDirectory(
            at: downloads.appendingPathComponent("show/season"), withIntermediateDirectories: true)
        try Data("a".utf8).write(to: downloads.appendingPathComponent("show/a.mkv"))
        try Data("b".utf8).write(to: downloads.appendingPathComponent("show/season/b.mkv"))
        try Data("mine".utf8).write(to: downloads.appendingPathComponent("other.txt"))

        let problems = LocalDataRemoval.remove(
            files: [["show", "a.mkv"], ["show", "season", "b.mkv"], ["show", "missing.mkv"]],
            beneath: downloads.path)
        #expect(problems.isEmpty, "\(problems)")
        #expect(!FileManager.default.fileExists(atPath: downloads.appendingPathComponent("show").path))
        #expect(FileManager.default.fileExists(atPath: downloads.appendingPathComponent("other.txt").path))
    }

    @Test func neverFollowsALinkOutOfTheDownloadFolder() throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let downloads = root.appendingPathComponent("downloads")
        let outside = root.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: downloads, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        let precious = outside.appendingPathComponent("a.mkv")
        try Data("precious".utf8).write(to: precious)
        // The torrent's folder is a link to somewhere else, and one of its files is a link too.
        try FileManager.default.createSymbolicLink(
            at: downloads.appendingPathComponent("show"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(
            at: downloads.appendingPathComponent("single.mkv"), withDestinationURL: precious)

        let problems = LocalDataRemoval.remove(
            files: [["show", "a.mkv"], ["single.mkv"]], beneath: downloads.path)
        #expect(problems.count == 1, "the file behind the linked folder is refused: \(problems)")
        #expect(FileManager.default.fileExists(atPath: precious.path))
        #expect(
            (try? FileManager.default.destinationOfSymbolicLink(
                atPath: downloads.appendingPathComponent("single.mkv").path)) == nil,
            "a link in a file's place is removed as a link")
    }
}
