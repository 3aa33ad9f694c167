import Foundation

/// Where `potluck bench` finds the interop harness (the drivers for the other clients, Tests/Interop)
/// when no `--harness` is given: the copy the build makes beside the binary, as this module's resource
/// bundle. So a binary finds it whatever the working directory, and with no source tree at all when the
/// folder is installed with it.
///
/// Not through `Bundle.module`: that falls back to a path inside the build folder, and stops the
/// process when neither is there, where a missing harness should be a message.
enum HarnessLocation {
    /// SwiftPM's name for the resource bundle of package `Potluck`'s target `PotluckBench`.
    static let bundleName = "Potluck_PotluckBench.resources"

    /// The harness folder beside `executable`, or nil when it is not there.
    static func beside(executable: String) -> String? {
        let folder = URL(fileURLWithPath: executable).deletingLastPathComponent()
            .appendingPathComponent(bundleName).path
        return FileManager.default.fileExists(atPath: folder + "/lt.py") ? folder : nil
    }
}
