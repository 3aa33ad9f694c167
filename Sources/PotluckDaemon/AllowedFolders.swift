import Glibc

/// The folders clients may put data in (`--allowed-dirs`): a download folder given to torrent-add or
/// session-set, an incomplete folder, and a torrent-set-location target must be one of them or inside
/// one. Empty: any absolute path (as Transmission).
///
/// A path is judged by its components (`/srv/media2` is not inside `/srv/media`) and, where it exists,
/// by where its symbolic links lead: a link planted inside an allowed folder cannot point the daemon
/// outside it.
public struct AllowedFolders: Sendable, Equatable {
    public let roots: [String]

    public init(_ roots: [String] = []) {
        self.roots = roots.map(Self.normalized)
    }

    /// Nil when `path` may be used, else why not, in words for the client.
    public func refusal(of path: String) -> String? {
        guard path.hasPrefix("/") else { return "\(path) is not an absolute path" }
        let components = path.split(separator: "/")
        guard !components.contains(where: { $0 == ".." || $0 == "." }) else {
            return "\(path) holds . or .. components"
        }
        guard !roots.isEmpty else { return nil }
        let resolved = Self.resolvingLinks(Self.normalized(path))
        let permitted = roots.contains { root in
            Self.isWithin(Self.normalized(path), root) && Self.isWithin(resolved, Self.resolvingLinks(root))
        }
        return permitted
            ? nil : "\(path) is outside the folders the operator allows (\(roots.joined(separator: ", ")))"
    }

    static func normalized(_ path: String) -> String {
        "/" + path.split(separator: "/").joined(separator: "/")
    }

    static func isWithin(_ path: String, _ root: String) -> Bool {
        root == "/" || path == root || path.hasPrefix(root + "/")
    }

    /// `path` with the links of its longest existing prefix resolved; the rest (folders not made yet)
    /// kept as written.
    static func resolvingLinks(_ path: String) -> String {
        var existing = path
        var rest: [Substring] = []
        while existing != "/" {
            if let real = realpath(existing, nil) {
                defer { free(real) }
                let base = String(cString: real)
                return rest.isEmpty ? base : normalized(base + "/" + rest.reversed().joined(separator: "/"))
            }
            guard let slash = existing.lastIndex(of: "/") else { break }
            rest.append(existing[existing.index(after: slash)...])
            existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
        }
        return path
    }
}
