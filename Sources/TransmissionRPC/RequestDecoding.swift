import Foundation
import TorrentModel

extension RPCRequest {
    /// Decodes a call, or throws the `result` Transmission would answer: "method name not recognized"
    /// for an unknown method, a message naming the argument for a missing or mistyped one.
    public init(method: String, arguments: [String: JSONValue]) throws(RPCFailure) {
        let reader = ArgumentReader(arguments: arguments)
        if let action = TorrentAction(rawValue: method) {
            self = .torrentAction(action, try Self.selection(reader))
            return
        }
        switch method {
        case "session-get":
            self = .sessionGet(fields: try reader.strings("fields"))
        case "session-set":
            self = .sessionSet(try Self.sessionChanges(arguments))
        case "session-stats":
            self = .sessionStats
        case "session-close":
            self = .sessionClose
        case "port-test":
            self = .portTest
        case "blocklist-update":
            self = .blocklistUpdate
        case "free-space":
            guard let path = try reader.string("path") else {
                throw RPCFailure("directory path argument is missing")
            }
            if let problem = Self.pathProblem(path) { throw RPCFailure("directory path \(problem)") }
            self = .freeSpace(path: path)
        case "torrent-add":
            self = .torrentAdd(try Self.torrentAdd(reader))
        case "torrent-get":
            self = try Self.torrentGet(reader)
        case "torrent-set":
            self = .torrentSet(try Self.selection(reader), try Self.torrentChanges(reader))
        case "torrent-remove":
            self = .torrentRemove(
                try Self.selection(reader), deleteLocalData: try reader.bool("delete-local-data") ?? false)
        case "torrent-set-location":
            guard let location = try reader.string("location") else { throw RPCFailure("no location") }
            if let problem = Self.pathProblem(location) { throw RPCFailure("new location path \(problem)") }
            self = .torrentSetLocation(
                try Self.selection(reader), location: location, move: try reader.bool("move") ?? false)
        case "torrent-rename-path":
            guard let path = try reader.string("path"), let name = try reader.string("name") else {
                throw RPCFailure("torrent-rename-path needs 'path' and 'name'")
            }
            self = .torrentRenamePath(try Self.selection(reader), path: path, name: name)
        default:
            throw RPCFailure("method name not recognized")
        }
    }

    /// What makes `path` unusable as a folder, if anything. Its length is bounded as the system
    /// bounds it: a path is kept in state files and in every torrent-get row.
    private static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "is not absolute" }
        guard path.utf8.count < PATH_MAX else { return "is longer than \(PATH_MAX - 1) bytes" }
        return nil
    }

    /// The `ids` argument.
    static func selection(_ reader: ArgumentReader) throws(RPCFailure) -> TorrentSelection {
        guard let ids = reader.arguments["ids"], ids != .null else { return .all }
        let failure = RPCFailure(
            "argument 'ids' must be a torrent id, a hash string, a list of them, or \"recently-active\"")
        if ids == .string("recently-active") { return .recentlyActive }
        if let single = reference(ids) { return .only(single.map { [$0] } ?? []) }
        guard let list = ids.arrayValue else { throw failure }
        var references: [TorrentReference] = []
        for element in list {
            guard let entry = reference(element) else { throw failure }
            if let entry { references.append(entry) }
        }
        return .only(references)
    }

    /// One `ids` entry: nil when it is neither a number nor a string, `.some(nil)` for a string that is
    /// not an infohash and so names no torrent.
    private static func reference(_ value: JSONValue) -> TorrentReference?? {
        if let id = value.integerValue { return .some(.id(id)) }
        if let text = value.stringValue { return .some(InfoHash(hex: text).map(TorrentReference.hash)) }
        return nil
    }

    private static func torrentGet(_ reader: ArgumentReader) throws(RPCFailure) -> RPCRequest {
        guard let names = reader.arguments["fields"]?.arrayValue else {
            throw RPCFailure("no fields specified")
        }
        // A table repeats a column for each repeated name, so a field named a million times would
        // multiply the answer by as much: twice every field is more than any client asks for.
        let maximumFields = 2 * TorrentField.allCases.count
        guard names.count <= maximumFields else {
            throw RPCFailure(
                "argument 'fields' names \(names.count) fields; at most \(maximumFields) are accepted")
        }
        let fields = names.compactMap { $0.stringValue.flatMap(TorrentField.init(rawValue:)) }
        var counts: [TorrentField: Int] = [:]
        for field in fields {
            counts[field, default: 0] += 1
            guard counts[field]! <= 2 else {
                throw RPCFailure("argument 'fields' names '\(field.rawValue)' more than twice")
            }
        }
        let format: TorrentGetFormat
        switch try reader.string("format") {
        case nil, "objects": format = .objects
        case "table": format = .table
        case let other?:
            throw RPCFailure("argument 'format' must be \"objects\" or \"table\", not \"\(other)\"")
        }
        return .torrentGet(fields: fields, selection: try selection(reader), format: format)
    }

    private static func torrentAdd(_ reader: ArgumentReader) throws(RPCFailure) -> TorrentAddRequest {
        let filename = try reader.string("filename") ?? ""
        let metainfo = try reader.string("metainfo") ?? ""
        let source: TorrentSource
        if !filename.isEmpty {
            source = classify(filename: filename)
        } else if !metainfo.isEmpty {
            guard let bytes = Base64.decode(metainfo), !bytes.isEmpty else {
                throw RPCFailure("unrecognized info")
            }
            source = .metainfo(bytes)
        } else {
            throw RPCFailure("no filename or metainfo specified")
        }
        let downloadDirectory = try reader.string("download-dir")
        if let downloadDirectory, let problem = pathProblem(downloadDirectory) {
            throw RPCFailure("download directory path \(problem)")
        }
        return TorrentAddRequest(
            source: source, downloadDirectory: downloadDirectory, paused: try reader.bool("paused"),
            cookies: try reader.string("cookies"), changes: try torrentChanges(reader))
    }

    /// `filename` names a magnet link, a URL for the backend to fetch, or a file on the daemon's machine.
    private static func classify(filename: String) -> TorrentSource {
        let lowered = filename.lowercased()
        if lowered.hasPrefix("magnet:") { return .magnet(filename) }
        let fetched = ["http://", "https://", "ftp://", "sftp://"]
        if fetched.contains(where: lowered.hasPrefix) { return .url(filename) }
        return .file(filename)
    }

    /// torrent-set's arguments; torrent-add shares the ones that make sense when adding.
    static func torrentChanges(_ reader: ArgumentReader) throws(RPCFailure) -> TorrentChanges {
        var changes = TorrentChanges()
        changes.bandwidthPriority = try reader.enumeration("bandwidthPriority")
        changes.downloadLimit = try reader.integer("downloadLimit")
        changes.downloadLimited = try reader.bool("downloadLimited")
        changes.uploadLimit = try reader.integer("uploadLimit")
        changes.uploadLimited = try reader.bool("uploadLimited")
        changes.honorsSessionLimits = try reader.bool("honorsSessionLimits")
        changes.filesWanted = try fileSelection(reader, "files-wanted")
        changes.filesUnwanted = try fileSelection(reader, "files-unwanted")
        changes.priorityHigh = try fileSelection(reader, "priority-high")
        changes.priorityNormal = try fileSelection(reader, "priority-normal")
        changes.priorityLow = try fileSelection(reader, "priority-low")
        changes.labels = try reader.strings("labels").map { labels throws(RPCFailure) in try checked(labels) }
        changes.location = try reader.string("location")
        if let location = changes.location, let problem = pathProblem(location) {
            throw RPCFailure("new location path \(problem)")
        }
        changes.peerLimit = try reader.integer("peer-limit")
        changes.queuePosition = try reader.integer("queuePosition")
        changes.seedRatioLimit = try reader.real("seedRatioLimit")
        changes.seedRatioMode = try reader.enumeration("seedRatioMode")
        changes.seedIdleLimit = try reader.integer("seedIdleLimit")
        changes.seedIdleMode = try reader.enumeration("seedIdleMode")
        changes.trackerList = try reader.string("trackerList")
        changes.trackerAdd = try reader.strings("trackerAdd")
        changes.trackerRemove = try reader.integers("trackerRemove")
        changes.trackerReplace = try trackerReplacements(reader)
        // Each torrent the request names goes through these lists (a torrent keeps at most 100).
        for (key, count) in [
            ("trackerAdd", changes.trackerAdd?.count), ("trackerRemove", changes.trackerRemove?.count),
            ("trackerReplace", changes.trackerReplace?.count),
        ] where count ?? 0 > maximumTrackerEdits {
            throw RPCFailure("argument '\(key)' names \(count ?? 0) trackers; at most \(maximumTrackerEdits)")
        }
        changes.group = try reader.string("group")
        if let group = changes.group { try checkLength(group, of: "the group") }
        return changes
    }

    static let maximumTrackerEdits = 1_000

    /// `trackerReplace`: tracker ids and their new announce URLs, alternating in one list.
    private static func trackerReplacements(
        _ reader: ArgumentReader
    ) throws(RPCFailure) -> [TrackerReplacement]? {
        guard let value = reader.arguments["trackerReplace"], value != .null else { return nil }
        let failure = RPCFailure("argument 'trackerReplace' must be a list of tracker ids and announce URLs")
        guard let list = value.arrayValue, list.count % 2 == 0 else { throw failure }
        return try stride(from: 0, to: list.count, by: 2).map { index throws(RPCFailure) in
            guard let id = list[index].integerValue, let announce = list[index + 1].stringValue else {
                throw failure
            }
            return TrackerReplacement(id: id, announce: announce)
        }
    }

    private static func fileSelection(
        _ reader: ArgumentReader, _ key: String
    ) throws(RPCFailure) -> FileSelection? {
        guard let indices = try reader.integers(key) else { return nil }
        // Each index once: every torrent the request names looks at the list.
        return indices.isEmpty ? .all : .indices(Array(Set(indices)).sorted())
    }

    /// Labels trimmed, and refused when empty or holding a comma (Transmission stores them comma-joined).
    /// At most this many labels, each and a group name at most `maximumNameBytes`: a torrent's labels
    /// go into its state file and into every torrent-get that lists them, for every torrent a request
    /// names (Transmission has no limit; one request could make each state file 16 MiB).
    static let maximumLabels = 64
    static let maximumNameBytes = 256

    private static func checked(_ labels: [String]) throws(RPCFailure) -> [String] {
        guard labels.count <= maximumLabels else {
            throw RPCFailure("at most \(maximumLabels) labels, not \(labels.count)")
        }
        return try labels.map { label throws(RPCFailure) in
            let trimmed = label.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { throw RPCFailure("labels cannot be empty") }
            if trimmed.contains(",") { throw RPCFailure("labels cannot contain comma (,) character") }
            try checkLength(trimmed, of: "a label")
            return trimmed
        }
    }

    private static func checkLength(_ name: String, of what: String) throws(RPCFailure) {
        guard name.utf8.count <= maximumNameBytes else {
            throw RPCFailure("\(what) is at most \(maximumNameBytes) bytes long")
        }
    }

    /// session-set's arguments: known writable keys are checked and kept, others ignored as Transmission
    /// ignores them (read-only keys that a client echoes back from session-get, say).
    private static func sessionChanges(_ arguments: [String: JSONValue]) throws(RPCFailure) -> SessionChanges
    {
        var changes = SessionChanges()
        for (name, value) in arguments.sorted(by: { $0.key < $1.key }) {
            guard let key = SessionSettingKey(rawValue: name), key.isWritable, value != .null else {
                continue
            }
            try changes.set(key, to: value)
        }
        if changes.keys.contains(.downloadDirectory),
            let path = arguments["download-dir"]?.stringValue, let problem = pathProblem(path)
        {
            throw RPCFailure("download directory path \(problem)")
        }
        if changes.keys.contains(.incompleteDirectory),
            let path = arguments["incomplete-dir"]?.stringValue, let problem = pathProblem(path)
        {
            throw RPCFailure("incomplete torrents directory path \(problem)")
        }
        return changes
    }
}
