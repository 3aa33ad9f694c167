import TorrentModel

/// An opaque handle for one connected peer, chosen by the engine.
///
/// Slots are small integers that the engine reuses after a peer leaves, like file descriptors; the swarm
/// types index arrays by them, so keep them dense (see `PeerSlot.maximumValue`).
public struct PeerSlot: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The largest slot value accepted: bounds the per-peer tables at a few MiB in the worst case.
    public static let maximumValue: UInt32 = 1 << 16

    /// The engine's number for the connection.
    public let value: UInt32

    /// A slot; `value` must not exceed `maximumValue` (a programmer error, not peer input).
    public init(_ value: UInt32) {
        precondition(value <= Self.maximumValue, "peer slot \(value) is above PeerSlot.maximumValue")
        self.value = value
    }

    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    public var description: String { "peer#\(value)" }
    var index: Int { Int(value) }
}

extension SeededRandom {
    /// A uniform integer in `0..<upperBound`.
    mutating func below(_ upperBound: Int) -> Int {
        precondition(upperBound > 0)
        return Int(next(upperBound: UInt64(upperBound)))
    }
}
