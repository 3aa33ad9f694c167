import Metainfo
import TransmissionRPC

/// One torrent-rename-path, as Transmission does it: the file or folder at `path` inside the torrent
/// (the top folder, a subfolder, a file, or a single-file torrent's file) takes `name` as its last
/// component. The state folder keeps a torrent's renames in order; the paths they lead to are the
/// metainfo's with each applied in turn. Pure: the backend renames on disk.
struct PathRename: Codable, Sendable, Hashable {
    /// The renamed file or folder, components joined by `/`, as the paths were before this rename.
    var path: String
    /// Its new last component.
    var name: String

    /// The components of `path`.
    var components: [String] { path.split(separator: "/", omittingEmptySubsequences: false).map(String.init) }

    /// `paths` (one per file of the torrent) after this rename, or the refusal a client is told: a
    /// name that is not one path component, a path that names no file or folder of the torrent, or a
    /// name another file or folder beside it already has.
    func applied(to paths: [[String]]) throws(RPCFailure) -> [[String]] {
        guard FileEntry.isValidPathComponent(name) else {
            throw RPCFailure(
                "invalid name \"\(name)\": a new name is one path component (not empty, \".\" or \"..\", "
                    + "no \"/\")")
        }
        let old = components
        let renamed = paths.map { $0.starts(with: old) }
        guard old.allSatisfy({ !$0.isEmpty }), renamed.contains(true) else {
            throw RPCFailure("no file or folder \"\(path)\" in the torrent")
        }
        guard name != old[old.count - 1] else { return paths }
        let new = Array(old.dropLast()) + [name]
        if zip(paths, renamed).contains(where: { path, isRenamed in !isRenamed && path.starts(with: new) }) {
            throw RPCFailure("\"\(new.joined(separator: "/"))\" already exists in the torrent")
        }
        return zip(paths, renamed).map { path, isRenamed in
            isRenamed ? new + path.dropFirst(old.count) : path
        }
    }

    /// The paths `renames` lead to from the metainfo's (each was checked when it was made).
    static func paths(_ original: [[String]], after renames: [PathRename]) -> [[String]] {
        renames.reduce(original) { paths, rename in (try? rename.applied(to: paths)) ?? paths }
    }
}
