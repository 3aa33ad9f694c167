import Foundation

/// Recognizes IP address literals in text, without resolving anything.
enum IPAddressLiteral {
    /// True for a dotted-quad IPv4 address or an IPv6 address (with `::` compression and an optional
    /// trailing dotted quad).
    static func isValid(_ text: some StringProtocol) -> Bool {
        isIPv4(text) || isIPv6(text)
    }

    static func isIPv4(_ text: some StringProtocol) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                (1...3).contains(part.count) && part.allSatisfy(\.isASCIIDigit) && Int(part)! <= 255
            }
    }

    static func isIPv6(_ text: some StringProtocol) -> Bool {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return false }
        var groupCount = 0
        for (index, half) in halves.enumerated() where !half.isEmpty {
            let groups = half.split(separator: ":", omittingEmptySubsequences: false)
            for (position, group) in groups.enumerated() {
                let isLastGroup = index == halves.count - 1 && position == groups.count - 1
                if isLastGroup && isIPv4(group) {
                    groupCount += 2
                } else if (1...4).contains(group.count) && group.allSatisfy(\.isHexDigit) {
                    groupCount += 1
                } else {
                    return false
                }
            }
        }
        return halves.count == 2 ? groupCount <= 7 : groupCount == 8
    }

    /// `::ffff:192.168.1.2` as `192.168.1.2`, so IPv4 whitelist entries apply to clients that reach a
    /// dual-stack socket; any other address unchanged.
    static func unmappingIPv4(_ address: String) -> String {
        let prefix = "::ffff:"
        guard address.lowercased().hasPrefix(prefix) else { return address }
        let tail = address.dropFirst(prefix.count)
        return isIPv4(tail) ? String(tail) : address
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
