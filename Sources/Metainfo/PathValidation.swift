/// The rules that keep a torrent's file paths inside the download folder.
enum PathValidator {
    /// NAME_MAX on Linux file systems.
    static let maxComponentBytes = 255

    /// Checks one path component given as raw bytes and returns it as a String.
    static func component(
        _ bytes: some Collection<UInt8>, isFirst: Bool, field: String, path: [String]
    ) throws(MetainfoError) -> String {
        let display = path + [String(decoding: bytes, as: UTF8.self)]
        func reject(_ reason: MetainfoError.PathProblem) -> MetainfoError {
            .unsafePath(field: field, path: display, reason: reason)
        }
        if bytes.isEmpty { throw reject(.emptyComponent) }
        if bytes.elementsEqual([UInt8(ascii: ".")]) { throw reject(.currentDirectory) }
        if bytes.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) { throw reject(.parentDirectory) }
        if bytes.first == UInt8(ascii: "/") { throw reject(isFirst ? .absolute : .containsSlash) }
        if bytes.contains(UInt8(ascii: "/")) { throw reject(.containsSlash) }
        if bytes.contains(0) { throw reject(.containsNUL) }
        if bytes.count > maxComponentBytes { throw reject(.componentTooLong(byteCount: bytes.count)) }
        guard let string = String(validating: bytes, as: UTF8.self) else { throw reject(.invalidUTF8) }
        return string
    }

    /// Checks a whole path given as Strings (from the builder).
    static func path(_ components: [String], field: String, limits: MetainfoLimits) throws(MetainfoError) {
        if components.isEmpty { throw .unsafePath(field: field, path: [], reason: .empty) }
        if components.count > limits.maxPathComponents {
            throw .unsafePath(
                field: field, path: components, reason: .tooManyComponents(count: components.count))
        }
        var checked: [String] = []
        for (i, component) in components.enumerated() {
            checked.append(
                try Self.component(Array(component.utf8), isFirst: i == 0, field: field, path: checked))
        }
    }

    /// Rejects two files with the same path, or one file used as a directory of another: either would
    /// make two files share storage or fail to create.
    static func checkConflicts(_ paths: [[String]], field: String) throws(MetainfoError) {
        var files = Set<[String]>()
        for path in paths where !files.insert(path).inserted {
            throw .unsafePath(field: field, path: path, reason: .conflictsWithAnotherFile)
        }
        for path in paths where path.count > 1 {
            for prefixLength in 1..<path.count where files.contains(Array(path[..<prefixLength])) {
                throw .unsafePath(field: field, path: path, reason: .conflictsWithAnotherFile)
            }
        }
    }
}

extension FileEntry {
    /// Whether `component` may be one component of a file's path by the metainfo's rules (not empty,
    /// `.` or `..`; no `/` or NUL; at most 255 bytes): for names a front end gives files.
    public static func isValidPathComponent(_ component: String) -> Bool {
        (try? PathValidator.component(Array(component.utf8), isFirst: false, field: "", path: [])) != nil
    }
}
