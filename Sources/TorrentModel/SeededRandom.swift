/// SplitMix64: a tiny, fast, seedable generator. Every random choice in the protocol cores (picker
/// tie-breaks, optimistic unchokes, tracker transaction ids, tier shuffles) comes from one of these, so
/// a run replays exactly from its seed. Not cryptographic.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose whole output is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
