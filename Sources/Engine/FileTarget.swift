import Glibc
import Metainfo

/// Files of a torrent as a user names them: by the indices `potluck info` prints (`1,3-5`), or by a
/// glob (`fnmatch`, where `*` also crosses `/`) on the file's path, with or without the torrent's own
/// folder (`*.mkv`, `extras/*`, `Show/extras/*`). Padding files are never named.
public enum FileTarget: Hashable, Sendable, CustomStringConvertible {
    /// Files by index in the torrent's file list.
    case indices([ClosedRange<Int>])
    /// Files whose path matches the pattern.
    case glob(String)

    /// Digits, commas and dashes are indices (`1,3-5`); anything else is a glob. Nil for an empty text
    /// and for an index list that does not parse (`3-1`, `1,,2`).
    public init?(parsing text: String) {
        guard !text.isEmpty else { return nil }
        guard text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "," || $0 == "-") }) else {
            self = .glob(text)
            return
        }
        var ranges: [ClosedRange<Int>] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard let first = bounds.first ?? nil, let last = bounds.last ?? nil, bounds.count <= 2,
                first <= last
            else { return nil }
            ranges.append(first...last)
        }
        self = .indices(ranges)
    }

    public var description: String {
        switch self {
        case .indices(let ranges):
            ranges.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
                .joined(separator: ",")
        case .glob(let pattern): pattern
        }
    }

    /// The indices of the files of `layout` this names, in order (padding files never).
    public func files(in layout: FileLayout) -> [Int] {
        layout.files.indices.filter { index in
            !layout.files[index].isPadding && matches(index: index, path: layout.files[index].path)
        }
    }

    /// Indices out of the file list's range (to tell a user, who surely meant a file).
    public func indicesOutOfRange(fileCount: Int) -> [Int] {
        guard case .indices(let ranges) = self else { return [] }
        return ranges.flatMap { range in [range.lowerBound, range.upperBound].filter { $0 >= fileCount } }
    }

    private func matches(index: Int, path: [String]) -> Bool {
        switch self {
        case .indices(let ranges):
            return ranges.contains { $0.contains(index) }
        case .glob(let pattern):
            // A multi-file torrent's paths start with its folder; a single file's path is its name.
            let full = path.joined(separator: "/")
            let inside = path.count > 1 ? path.dropFirst().joined(separator: "/") : full
            return fnmatch(pattern, inside, 0) == 0 || fnmatch(pattern, full, 0) == 0
        }
    }
}
