import ArgumentParser
import CommandSupport
import Engine
import Foundation
import Metainfo
import TorrentModel

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a .torrent file or a magnet link.",
        discussion: """
            Shows the name, infohashes, size, pieces, files, trackers, web seeds and flags. A torrent that \
            fails validation (hostile paths, inconsistent hashes, malformed bencode) is reported with the \
            reason and exit status 1. With --scrape, also asks every tracker (HTTP and UDP, in parallel) \
            for the torrent's seeders, leechers and completed downloads; a tracker that fails is shown \
            with the reason (exit status 0 as long as the torrent itself is valid).
            """)

    @Argument(help: "A .torrent file or a magnet: link.", completion: .file(extensions: ["torrent"]))
    var source: String

    @Flag(help: "Print JSON (for scripts) instead of text.")
    var json = false

    @Flag(help: "Ask each tracker for seeders, leechers and completed downloads.")
    var scrape = false

    @Option(name: .customLong("scrape-timeout"), help: "Seconds to wait for the trackers' answers.")
    var scrapeTimeoutSeconds: Int = 15

    @Option(
        name: .customLong("tracker-ca"),
        help: "A PEM file of CA certificates to trust for HTTPS trackers, besides the system's.")
    var trackerCAFile: String?

    func validate() throws {
        guard (1...300).contains(scrapeTimeoutSeconds) else {
            throw ValidationError("--scrape-timeout must be between 1 and 300 seconds")
        }
    }

    func run() throws {
        var description: [(String, Any)]
        var scrapeTarget: (trackers: [[String]], infoHash: InfoHash)?
        if source.lowercased().hasPrefix("magnet:") {
            do {
                let magnet = try MagnetLink(parsing: source)
                description = Self.describe(magnet)
                if let infoHash = magnet.infoHashV1 {
                    scrapeTarget = (magnet.trackers.map { [$0] }, infoHash)
                }
            } catch {
                printError("potluck: not a valid magnet link: \(error)")
                throw ExitCode(1)
            }
        } else {
            guard let data = FileManager.default.contents(atPath: source) else {
                printError("potluck: cannot read \(source)")
                throw ExitCode(1)
            }
            do {
                let metainfo = try Metainfo(bytes: Array(data))
                description = Self.describe(metainfo)
                scrapeTarget = (metainfo.trackers, metainfo.wireInfoHash)
            } catch {
                printError("potluck: \(source) is not a valid torrent: \(error)")
                throw ExitCode(1)
            }
        }
        if scrape {
            guard let scrapeTarget else {
                printError("potluck: cannot scrape: no infohash")
                throw ExitCode(1)
            }
            let results: [TrackerScrapeResult]
            do {
                results = try TrackerScraper.scrape(
                    trackers: scrapeTarget.trackers, infoHash: scrapeTarget.infoHash,
                    timeoutSeconds: UInt64(scrapeTimeoutSeconds), extraCAFile: trackerCAFile)
            } catch {
                printError("potluck: \(error.description)")
                throw ExitCode(1)
            }
            description.append(("scrape", results.map(Self.scrapeFields)))
        }
        if json {
            let object = Dictionary(description, uniquingKeysWith: { a, _ in a })
            let data = try JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(Self.text(description))
        }
    }

    static func describe(_ torrent: Metainfo) -> [(String, Any)] {
        var fields: [(String, Any)] = [("name", torrent.name)]
        fields.append(("version", "\(torrent.version)"))
        if let v1 = torrent.infoHashV1 { fields.append(("infohash_v1", v1.hex)) }
        if let v2 = torrent.infoHashV2 { fields.append(("infohash_v2", v2.description)) }
        fields.append(("total_size", torrent.totalLength))
        fields.append(("piece_size", torrent.pieceLength))
        fields.append(("piece_count", torrent.pieceCount))
        fields.append(("private", torrent.isPrivate))
        fields.append(("trackers", torrent.trackers))
        fields.append(("web_seeds", torrent.webSeeds))
        if let comment = torrent.comment { fields.append(("comment", comment)) }
        if let createdBy = torrent.createdBy { fields.append(("created_by", createdBy)) }
        if let date = torrent.creationDate { fields.append(("creation_date", Self.iso8601(date))) }
        if let source = torrent.source { fields.append(("source", source)) }
        fields.append(
            (
                "files",
                // The index is the file's place in the torrent (padding files count, unshown): what
                // `download --files` and `--priority` take.
                torrent.files.enumerated().filter { !$0.element.isPadding }.map { index, file in
                    ["index": index, "path": file.path.joined(separator: "/"), "size": file.length]
                }
            ))
        fields.append(("magnet", torrent.magnetLink.uri))
        return fields
    }

    /// One tracker's scrape as JSON-ready fields.
    static func scrapeFields(_ result: TrackerScrapeResult) -> [String: Any] {
        switch result.outcome {
        case .success(let counts):
            [
                "tracker": result.tracker, "seeders": counts.seeders, "leechers": counts.leechers,
                "completed": counts.completed,
            ]
        case .failure(let failure):
            ["tracker": result.tracker, "error": failure.description]
        }
    }

    /// Seconds since 1970 as an ISO 8601 UTC timestamp.
    static func iso8601(_ seconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    static func describe(_ magnet: MagnetLink) -> [(String, Any)] {
        var fields: [(String, Any)] = []
        if let name = magnet.displayName { fields.append(("name", name)) }
        if let v1 = magnet.infoHashV1 { fields.append(("infohash_v1", v1.hex)) }
        if let v2 = magnet.infoHashV2 { fields.append(("infohash_v2", v2.description)) }
        fields.append(("trackers", magnet.trackers))
        fields.append(("web_seeds", magnet.webSeeds))
        fields.append(("peers", magnet.peers.map(\.description)))
        if !magnet.selectedFiles.isEmpty {
            fields.append(
                ("selected_files", magnet.selectedFiles.map { "\($0.lowerBound)-\($0.upperBound)" }))
        }
        return fields
    }

    /// Aligned `label: value` lines, lists one item a line.
    static func text(_ fields: [(String, Any)]) -> String {
        let labels: [String: String] = [
            "name": "name", "version": "version", "infohash_v1": "infohash v1", "infohash_v2": "infohash v2",
            "total_size": "size", "piece_size": "piece size", "piece_count": "pieces", "private": "private",
            "trackers": "trackers", "web_seeds": "web seeds", "comment": "comment",
            "created_by": "created by",
            "creation_date": "created", "source": "source", "files": "files", "magnet": "magnet",
            "peers": "peers",
            "selected_files": "selected files",
        ]
        var lines: [String] = []
        func label(_ key: String) -> String {
            let text = (labels[key] ?? key) + ":"
            return text + String(repeating: " ", count: max(1, 14 - text.count))
        }
        for (key, value) in fields {
            switch value {
            case let size as Int64 where key == "total_size":
                lines.append(label(key) + "\(Format.size(size)) (\(size) bytes)")
            case let size as Int where key == "piece_size":
                lines.append(label(key) + Format.bytes(size))
            case let flag as Bool:
                lines.append(label(key) + (flag ? "yes" : "no"))
            case let tiers as [[String]]:
                if tiers.isEmpty { lines.append(label(key) + "none") }
                for (i, tier) in tiers.enumerated() {
                    lines.append(
                        (i == 0 ? label(key) : String(repeating: " ", count: 14)) + "tier \(i + 1): "
                            + tier.joined(separator: ", "))
                }
            case let list as [String]:
                lines.append(label(key) + (list.isEmpty ? "none" : list.joined(separator: ", ")))
            case let scrapes as [[String: Any]] where key == "scrape":
                if scrapes.isEmpty { lines.append(label(key) + "no trackers") }
                for (i, entry) in scrapes.enumerated() {
                    let tracker = entry["tracker"] as? String ?? "?"
                    let counts =
                        (entry["error"] as? String).map { "error: \($0)" }
                        ?? "seeders \(entry["seeders"] ?? 0), leechers \(entry["leechers"] ?? 0), "
                        + "completed \(entry["completed"] ?? 0)"
                    lines.append(
                        (i == 0 ? label(key) : String(repeating: " ", count: 14)) + "\(tracker): \(counts)")
                }
            case let files as [[String: Any]]:
                lines.append(label(key) + "\(files.count)")
                for file in files {
                    let size = (file["size"] as? Int64).map { Format.size($0) } ?? ""
                    let index = file["index"].map { "\($0)" } ?? ""
                    lines.append(
                        "  " + String(repeating: " ", count: max(0, 4 - index.count)) + index
                            + "  \(file["path"] ?? "")  (\(size))")
                }
            default:
                lines.append(label(key) + "\(value)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
