import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// torrent-rename-path's rules on a torrent's file paths, as Transmission applies them.
@Suite struct PathRenameTests {
    private let paths = [["Show", "e1.mkv"], ["Show", "extras", "a.txt"], ["Show", "extras", "b.txt"]]

    private func failure(_ path: String, _ name: String, in paths: [[String]]) -> String? {
        do {
            _ = try PathRename(path: path, name: name).applied(to: paths)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func aFileAFolderOrTheTopFolderIsRenamed() throws {
        #expect(
            try PathRename(path: "Show/e1.mkv", name: "pilot.mkv").applied(to: paths)
                == [["Show", "pilot.mkv"], ["Show", "extras", "a.txt"], ["Show", "extras", "b.txt"]])
        #expect(
            try PathRename(path: "Show/extras", name: "bonus").applied(to: paths)
                == [["Show", "e1.mkv"], ["Show", "bonus", "a.txt"], ["Show", "bonus", "b.txt"]])
        #expect(
            try PathRename(path: "Show", name: "Series").applied(to: paths)
                == [["Series", "e1.mkv"], ["Series", "extras", "a.txt"], ["Series", "extras", "b.txt"]])
        #expect(try PathRename(path: "one.iso", name: "two.iso").applied(to: [["one.iso"]]) == [["two.iso"]])
        // The same name again changes nothing.
        #expect(try PathRename(path: "Show/extras", name: "extras").applied(to: paths) == paths)
    }

    /// Renames are kept in order; the paths are the metainfo's with each applied in turn.
    @Test func keptRenamesLeadToTheSamePathsAgain() {
        let renames = [
            PathRename(path: "Show", name: "Series"), PathRename(path: "Series/extras", name: "bonus"),
        ]
        #expect(
            PathRename.paths(paths, after: renames)
                == [["Series", "e1.mkv"], ["Series", "bonus", "a.txt"], ["Series", "bonus", "b.txt"]])
    }

    @Test func badNamesUnknownPathsAndClashesAreRefused() {
        for name in ["a/b", "", ".", "..", "x\u{0}y", String(repeating: "n", count: 256)] {
            #expect(failure("Show/e1.mkv", name, in: paths)?.contains("invalid name") == true, "\(name)")
        }
        for path in ["Show/e1", "Sho", "Show/extras/c.txt", "", "/Show", "Show/", "Show//extras", "e1.mkv"] {
            #expect(failure(path, "new", in: paths)?.contains("no file or folder") == true, "\(path)")
        }
        #expect(failure("Show/e1.mkv", "extras", in: paths)?.contains("already exists") == true)
        #expect(failure("Show/extras/a.txt", "b.txt", in: paths)?.contains("already exists") == true)
    }
}
