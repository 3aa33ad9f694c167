import Foundation
import Testing

@testable import PotluckDaemon

/// `--allowed-dirs`: which folders clients may name, by components and by where links lead.
@Suite struct AllowedFoldersTests {
    @Test func pathsAreJudgedByWholeComponents() {
        let folders = AllowedFolders(["/srv/media/", "/data"])
        #expect(folders.refusal(of: "/srv/media") == nil)
        #expect(folders.refusal(of: "/srv/media/shows/new") == nil)
        #expect(folders.refusal(of: "/data//x") == nil)
        #expect(folders.refusal(of: "/srv/media2")?.contains("outside the folders") == true)
        #expect(folders.refusal(of: "/srv")?.contains("outside the folders") == true)
        #expect(folders.refusal(of: "/srv/media/../etc")?.contains("..") == true)
        #expect(folders.refusal(of: "relative/path")?.contains("not an absolute path") == true)
    }

    @Test func withoutALimitAnyAbsolutePathGoes() {
        let anywhere = AllowedFolders()
        #expect(anywhere.refusal(of: "/anything/at/all") == nil)
        #expect(anywhere.refusal(of: "nowhere") != nil)
        #expect(anywhere.refusal(of: "/a/./b") != nil)
    }

    /// A link planted inside an allowed folder does not lead the daemon out of it.
    @Test func aLinkInsideAnAllowedFolderCannotLeadOut() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-allowed-\(UUID())")
        let allowed = root.appendingPathComponent("allowed")
        let outside = root.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: allowed, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createSymbolicLink(
            at: allowed.appendingPathComponent("escape"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(
            at: allowed.appendingPathComponent("inside"),
            withDestinationURL: allowed.appendingPathComponent("real"))
        try FileManager.default.createDirectory(
            at: allowed.appendingPathComponent("real"), withIntermediateDirectories: true)

        let folders = AllowedFolders([allowed.path])
        #expect(folders.refusal(of: allowed.path + "/escape") != nil)
        #expect(folders.refusal(of: allowed.path + "/escape/new/deeper") != nil)
        #expect(folders.refusal(of: allowed.path + "/inside/new") == nil)
        #expect(folders.refusal(of: allowed.path + "/not/made/yet") == nil)
    }
}
