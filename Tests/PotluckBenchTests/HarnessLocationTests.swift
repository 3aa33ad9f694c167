import Foundation
import Testing

@testable import PotluckBench

@Suite struct HarnessLocationTests {
    /// A scratch folder standing for where a binary was installed or built.
    static func scratch() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "potluck-harness-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    static func touch(_ file: URL) throws {
        try FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data()))
    }

    @Test func theHarnessIsTheBundleBesideTheExecutable() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let bundle = folder.appendingPathComponent("bin/\(HarnessLocation.bundleName)")
        try Self.touch(bundle.appendingPathComponent("lt.py"))
        let executable = folder.appendingPathComponent("bin/potluck").path
        #expect(HarnessLocation.beside(executable: executable) == bundle.path)
    }

    /// A binary in a source tree's build folder, without its bundle, does not fall back on Tests/Interop.
    @Test func theSourceTreeIsNotSearched() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Self.touch(folder.appendingPathComponent("Tests/Interop/lt.py"))
        let executable = folder.appendingPathComponent(".build/release/potluck").path
        #expect(HarnessLocation.beside(executable: executable) == nil)
    }

    /// The build copies every driver the benchmarks run, and what they import, beside its products
    /// (this test process among them).
    @Test func theBuildPutsTheHarnessBesideItsProducts() throws {
        let harness = try #require(HarnessLocation.beside(executable: ExternalCommand.currentExecutable()))
        let tools = [
            "lt.py", "transmission.py", "aria2.py", "tracker.py", "netns.py", "linknet.py", "common.py",
        ]
        for tool in tools {
            let path = harness + "/" + tool
            #expect(FileManager.default.fileExists(atPath: path), "\(tool) missing in \(harness)")
        }
    }
}
