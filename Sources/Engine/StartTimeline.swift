/// When a torrent's first steps happened, from its start on its reactor to its first piece on disk:
/// where the time to the first verified piece goes (logged once, with `--verbose`).
struct StartTimeline {
    enum Step: Int, CaseIterable {
        case filesKnown
        case firstConnect
        case connected
        case handshake
        case unchoked
        case firstBlock
        case pieceVerified
        case pieceWritten

        var label: String {
            switch self {
            case .filesKnown: "files known"
            case .firstConnect: "first connect"
            case .connected: "connected"
            case .handshake: "handshake"
            case .unchoked: "unchoked"
            case .firstBlock: "first block"
            case .pieceVerified: "first piece verified"
            case .pieceWritten: "written"
            }
        }
    }

    private let start: UInt64
    /// Inline, so that a torrent that never downloads (a seed) allocates nothing for it.
    private var times = InlineArray<8, UInt64>(repeating: Self.notYet)
    private static let notYet = UInt64.max

    init(start: UInt64) {
        self.start = start
    }

    /// Notes `step` the first time it happens. Returns the timeline once the first piece is written,
    /// the last step; steps that never happened (a peer that connected to us, say) are left out.
    mutating func record(_ step: Step, at now: UInt64) -> String? {
        guard times[step.rawValue] == Self.notYet else { return nil }
        times[step.rawValue] = now
        guard step == .pieceWritten else { return nil }
        let parts = Step.allCases.compactMap { step in
            let time = times[step.rawValue]
            return time == Self.notYet ? nil : "\(step.label) \(Self.milliseconds(time &- start))"
        }
        return "start: " + parts.joined(separator: ", ") + " (ms from the torrent's start)"
    }

    private static func milliseconds(_ nanoseconds: UInt64) -> String {
        let tenths = (nanoseconds + 50_000) / 100_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
