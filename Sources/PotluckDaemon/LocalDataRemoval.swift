import Glibc

/// Deletes a torrent's files from its download folder (torrent-remove with `delete-local-data`).
///
/// Every path is walked from the download folder with `openat`, one component at a time and never
/// through a symbolic link, so a link planted inside the torrent's folder cannot lead the deletion
/// anywhere else; a link where a file should be is removed as a link. The metainfo parser has already
/// refused `..`, `/` and empty components. Folders the torrent made are removed once empty; anything
/// else in them is left alone.
enum LocalDataRemoval {
    /// Removes `files` (paths relative to `downloadDirectory`); returns the paths it could not remove,
    /// with why.
    static func remove(files: [[String]], beneath downloadDirectory: String) -> [String] {
        let root = open(downloadDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return files.isEmpty ? [] : ["\(downloadDirectory): \(reason(errno))"] }
        defer { close(root) }
        var problems: [String] = []
        var folders: Set<[String]> = []
        for path in files where !path.isEmpty {
            for depth in 1..<path.count { folders.insert(Array(path.prefix(depth))) }
            let outcome = withParent(of: path, beneath: root) { parent in
                unlinkat(parent, path[path.count - 1], 0) == 0 || errno == ENOENT ? 0 : errno
            }
            if outcome != 0 && outcome != ENOENT {
                problems.append(path.joined(separator: "/") + ": " + reason(outcome))
            }
        }
        // Deepest first, so a folder is empty by the time it is reached; a folder still holding
        // something the torrent did not put there stays.
        for folder in folders.sorted(by: { $0.count > $1.count }) {
            _ = withParent(of: folder, beneath: root) { parent in
                unlinkat(parent, folder[folder.count - 1], AT_REMOVEDIR) == 0 ? 0 : errno
            }
        }
        return problems
    }

    /// Opens each folder on the way to `path`'s last component without following links and runs
    /// `body` on the last one's descriptor; returns `body`'s result or the errno that stopped the walk.
    private static func withParent(of path: [String], beneath root: Int32, _ body: (Int32) -> Int32) -> Int32
    {
        var current = root
        defer { if current != root { close(current) } }
        for component in path.dropLast() {
            let next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { return errno }
            if current != root { close(current) }
            current = next
        }
        return body(current)
    }

    private static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
}
