/// How much a file of a torrent is wanted: the user's choice, per file, that decides which pieces are
/// downloaded and in what order. Its raw value is what resume data stores.
public enum FilePriority: UInt8, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    /// Not downloaded, and not created beyond the bytes it shares with pieces of wanted files.
    case skip = 0
    case low = 1
    case normal = 2
    case high = 3

    /// The name on the command line (`skip`, `low`, `normal`, `high`).
    public var description: String {
        switch self {
        case .skip: "skip"
        case .low: "low"
        case .normal: "normal"
        case .high: "high"
        }
    }

    /// The priority named `name` (as `description` spells it), or nil.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = match
    }

    public var isWanted: Bool { self != .skip }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}
