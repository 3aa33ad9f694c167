import Engine
import Foundation
import Logging
import TransmissionRPC

/// A torrent that has just finished downloading, as the on-completion program is told of it.
struct CompletedTorrent: Sendable, Equatable {
    let id: Int
    let hash: String
    let name: String
    let directory: String
    let labels: [String]
}

/// The on-completion program (`--on-complete`, `script-torrent-done-filename`): started directly (no
/// shell, so a torrent's name cannot become a command) with the daemon's environment and
/// Transmission's `TR_*` variables, which scripts written for Transmission read.
///
/// Started from the daemon's bookkeeping loop, never an engine thread; the daemon does not wait for
/// it, and logs how it ended.
enum CompletionScript {
    static func environment(
        for torrent: CompletedTorrent, now: Date, base: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        var environment = base
        environment["TR_APP_VERSION"] = ServerIdentity.transmissionVersion
        environment["TR_TIME_LOCALTIME"] = localTime(now)
        environment["TR_TORRENT_ID"] = "\(torrent.id)"
        environment["TR_TORRENT_HASH"] = torrent.hash
        environment["TR_TORRENT_NAME"] = torrent.name
        environment["TR_TORRENT_DIR"] = torrent.directory
        environment["TR_TORRENT_LABELS"] = torrent.labels.joined(separator: ",")
        return environment
    }

    /// Like C's `ctime` in local time, without its newline: `Thu Dec  3 14:56:30 2026`.
    static func localTime(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var text = [CChar](repeating: 0, count: 64)
        let length = strftime(&text, text.count, "%a %b %e %H:%M:%S %Y", &parts)
        return String(decoding: text.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Starts `program` for `torrent`; a program that cannot start, or ends with a failure, is logged.
    static func run(_ program: String, for torrent: CompletedTorrent, logger: Logger) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.environment = environment(for: torrent, now: Date())
        process.currentDirectoryURL = URL(fileURLWithPath: torrent.directory)
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { ended in
            if ended.terminationStatus != 0 || ended.terminationReason != .exit {
                logger.warning(
                    "on-completion program \(program) for \(torrent.name) ended with status \(ended.terminationStatus)"
                )
            }
        }
        do {
            try process.run()
            logger.info("started \(program) for \(torrent.name) (#\(torrent.id))")
        } catch {
            logger.error("cannot run the on-completion program \(program): \(error.localizedDescription)")
        }
    }
}
