import ArgumentParser
import Engine
import Metainfo
import TorrentModel

/// `download`'s choice of files, their priorities, and the order pieces are fetched in.
struct FileSelectionOptions: ParsableArguments {
    static let discussion = """
        Choosing files: files are named by the index `potluck info` prints, or by a glob on their path \
        (fnmatch: * also crosses /; the torrent's own folder may be left out). --only and --files keep \
        just the files they name (several add up), --skip drops files, then each --priority \
        LEVEL:FILES sets a level (skip, low, normal or high) for the files FILES names: indices such \
        as 1,3-5, or a glob. Pieces shared by a chosen and a skipped file are fetched whole; the skipped \
        file then holds only those bytes (a sparse file). The download completes once the chosen files \
        are verified. The choice is kept with the resume data: running again without one continues it, \
        and running with another fetches what is newly chosen and keeps what is verified.

        Examples:
          potluck download show.torrent --only '*.mkv' --skip '*sample*'
          potluck download show.torrent --files 0,2-4 --priority high:2
          potluck download album.torrent --priority low:'*.flac' --skip 'extras/*'
          potluck download film.torrent --stream-window 32   # play while it downloads
        """

    @Option(
        name: .customLong("only"),
        help: ArgumentHelp("Download only the files whose path matches GLOB; repeatable.", valueName: "glob"))
    var onlyGlobs: [String] = []

    @Option(
        name: .customLong("files"),
        help: ArgumentHelp(
            "Download only the files with these indices (as `potluck info` shows), e.g. 0,2-4; repeatable.",
            valueName: "list"))
    var onlyIndices: [String] = []

    @Option(
        name: .customLong("skip"),
        help: ArgumentHelp(
            "Do not download the files whose path matches GLOB; repeatable.", valueName: "glob"))
    var skipGlobs: [String] = []

    @Option(
        name: .customLong("priority"),
        help: ArgumentHelp(
            "Give the files FILES names (indices such as 1,3-5, or a glob) a LEVEL: skip, low, normal or "
                + "high; repeatable.",
            valueName: "level:files"))
    var priorityRules: [String] = []

    @Flag(help: "Fetch pieces in order, from the first (to play or read while downloading).")
    var sequential = false

    @Option(
        name: .customLong("stream-window"),
        help: ArgumentHelp(
            "Streaming: the next MIB mebibytes from the first missing piece come before everything else, "
                + "the rest rarest first; the window moves on as pieces arrive.",
            valueName: "mib"))
    var streamWindowMiB: Int?

    /// Whether any file was chosen or given a priority (else the resume data's choice stands).
    var choosesFiles: Bool {
        !onlyGlobs.isEmpty || !onlyIndices.isEmpty || !skipGlobs.isEmpty || !priorityRules.isEmpty
    }

    func validate() throws {
        for rule in priorityRules { _ = try Self.assignment(rule) }
        for list in onlyIndices {
            guard case .indices = FileTarget(parsing: list) else {
                throw ValidationError("--files \(list) is not a list of indices such as 0,2-4")
            }
        }
        if let streamWindowMiB, !(1...65536).contains(streamWindowMiB) {
            throw ValidationError("--stream-window must be between 1 and 65536 MiB")
        }
    }

    /// `LEVEL:FILES` as a priority and the files it names.
    static func assignment(_ rule: String) throws -> (FilePriority, FileTarget) {
        guard let colon = rule.firstIndex(of: ":"),
            let level = FilePriority(name: String(rule[..<colon])),
            let target = FileTarget(parsing: String(rule[rule.index(after: colon)...]))
        else {
            throw ValidationError(
                "--priority \(rule) is not LEVEL:FILES, LEVEL one of skip, low, normal, high (e.g. high:0,2 or low:*.txt)"
            )
        }
        return (level, target)
    }

    /// The files' priorities for `metainfo`, or nil when none was chosen. Every name must name a file:
    /// a glob that matches nothing or an index out of range is surely a mistake.
    func priorities(for metainfo: Metainfo) throws -> [FilePriority]? {
        guard choosesFiles else { return nil }
        let only = onlyGlobs.map { FileTarget.glob($0) } + onlyIndices.compactMap { FileTarget(parsing: $0) }
        let skip = skipGlobs.map { FileTarget.glob($0) }
        let assignments = try priorityRules.map(Self.assignment)
        let layout = metainfo.layout
        for target in only + skip + assignments.map(\.1) {
            let outOfRange = target.indicesOutOfRange(fileCount: layout.files.count)
            if let index = outOfRange.first {
                throw ValidationError(
                    "file index \(index) is out of range: the torrent has \(layout.files.count) files")
            }
            if target.files(in: layout).isEmpty {
                throw ValidationError("'\(target)' names no file of the torrent (see potluck info)")
            }
        }
        let priorities = FilePriorities(layout: layout, only: only, skip: skip, assignments: assignments)
        guard priorities.wantedFiles(in: layout).contains(true) else {
            throw ValidationError("this choice leaves no file to download")
        }
        return priorities.values
    }

    /// Sets the options' selection, order and window.
    func apply(to options: inout DownloadOptions, metainfo: Metainfo) throws {
        options.filePriorities = try priorities(for: metainfo)
        options.sequential = sequential
        options.streamWindowBytes = (streamWindowMiB ?? 0) << 20
    }
}
