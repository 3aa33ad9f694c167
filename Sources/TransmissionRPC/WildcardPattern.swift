import Foundation

/// A whitelist entry such as `192.168.*.*` or `*.example.org`: `*` matches any run of characters and
/// `?` any one character, compared without regard to case (IPv6 hex digits and host names alike).
public struct WildcardPattern: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let characters: [Character]

    public init(_ pattern: String) {
        self.pattern = pattern
        characters = Array(pattern.lowercased())
    }

    /// Comma- or semicolon-separated entries, as in Transmission's `rpc-whitelist` and
    /// `rpc-host-whitelist` settings; blanks around entries and empty entries are dropped.
    public static func list(_ text: String) -> [WildcardPattern] {
        text.split { $0 == "," || $0 == ";" }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .map(WildcardPattern.init)
    }

    public func matches(_ text: String) -> Bool {
        let subject = Array(text.lowercased())
        // Greedy matching with one backtrack point: linear in practice and never recursive.
        var p = 0
        var s = 0
        var starAt: Int?
        var resumeAt = 0
        while s < subject.count {
            if p < characters.count, characters[p] == "?" || characters[p] == subject[s] {
                p += 1
                s += 1
            } else if p < characters.count, characters[p] == "*" {
                starAt = p
                resumeAt = s
                p += 1
            } else if let star = starAt {
                p = star + 1
                resumeAt += 1
                s = resumeAt
            } else {
                return false
            }
        }
        while p < characters.count, characters[p] == "*" { p += 1 }
        return p == characters.count
    }

    public var description: String { pattern }
}
