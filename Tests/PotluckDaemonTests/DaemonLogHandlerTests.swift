import Foundation
import Locking
import Logging
import Testing

@testable import PotluckDaemon

/// The daemon's log lines: one per event, a level journald reads, and a level that can change while
/// the daemon runs.
@Suite struct DaemonLogHandlerTests {
    final class Lines: Sendable {
        let written = Lock<[String]>([])
        var all: [String] { written.withLock { $0 } }
    }

    static func logger(
        _ style: DaemonLogHandler.LineStyle, _ threshold: DaemonLogHandler.Threshold
    ) -> (
        Logger, Lines
    ) {
        let lines = Lines()
        let logger = Logger(label: "potluck") {
            DaemonLogHandler(label: $0, threshold: threshold, style: style) { line in
                lines.written.withLock { $0.append(line) }
            }
        }
        return (logger, lines)
    }

    @Test func journalLinesStartWithTheSyslogPriority() {
        let (logger, lines) = Self.logger(.journal, .init(.info))
        logger.info("added payload (#1)")
        logger.warning("two\nlines", metadata: ["torrent": "7"])
        logger.debug("left out")
        #expect(lines.all == ["<6>potluck: added payload (#1)\n", "<4>potluck: two lines torrent=7\n"])
    }

    @Test func terminalLinesStartWithTheTimeAndTheLevel() throws {
        let (logger, lines) = Self.logger(.timestamped, .init(.notice))
        logger.info("left out")
        logger.error("cannot use the watch folder")
        let line = try #require(lines.all.first)
        #expect(lines.all.count == 1)
        #expect(line.hasSuffix(" error potluck: cannot use the watch folder\n"), "\(line)")
        let time = try #require(line.split(separator: " ").first)
        #expect((try? Date(String(time), strategy: DaemonLogHandler.timeFormat)) != nil, "\(line)")
        #expect(!line.contains("\u{1B}"), "no colours")
    }

    @Test func aChangedThresholdAppliesToLoggersAlreadyMade() {
        let threshold = DaemonLogHandler.Threshold(.warning)
        let (logger, lines) = Self.logger(.journal, threshold)
        logger.info("before")
        threshold.level = .trace
        logger.trace("after")
        #expect(lines.all == ["<7>potluck: after\n"])
        #expect(logger.logLevel == .trace)
    }

    @Test func journalStyleOnlyWhenStandardErrorIsTheNamedStream() {
        #expect(DaemonLogHandler.standardErrorStyle(environment: [:]) == .timestamped)
        #expect(DaemonLogHandler.standardErrorStyle(environment: ["JOURNAL_STREAM": "0:0"]) == .timestamped)
    }
}
