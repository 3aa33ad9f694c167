import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// torrent-set's `files-wanted`, `files-unwanted` and `priority-*` laid over a torrent's kept settings.
@Suite struct FileChoiceTests {
    /// A torrent of many files, as a season pack or a software archive has: a client picking some of
    /// them sends thousands of indices at once.
    static let fileCount = 20_000

    static func apply(_ changes: TorrentChanges, to settings: inout StoredTorrent) throws {
        try EngineBackend.apply(changes, to: &settings, fileCount: fileCount)
    }

    static func changes(_ body: (inout TorrentChanges) -> Void) -> TorrentChanges {
        var changes = TorrentChanges()
        body(&changes)
        return changes
    }

    @Test func filesWantedAgainLeaveTheUnwantedList() throws {
        var settings = StoredTorrent(downloadDirectory: "/downloads", addedDate: 0)
        try Self.apply(Self.changes { $0.filesUnwanted = .all }, to: &settings)
        #expect(settings.unwantedFiles == Array(0..<Self.fileCount))

        let evens = Array(stride(from: 0, to: Self.fileCount, by: 2))
        try Self.apply(Self.changes { $0.filesWanted = .indices(evens) }, to: &settings)
        #expect(settings.unwantedFiles == Array(stride(from: 1, to: Self.fileCount, by: 2)))

        try Self.apply(Self.changes { $0.filesUnwanted = .indices([0, 2]) }, to: &settings)
        #expect(settings.unwantedFiles.prefix(4) == [0, 1, 2, 3])
        #expect(settings.unwantedFiles.count == Self.fileCount / 2 + 2)

        try Self.apply(Self.changes { $0.filesWanted = .all }, to: &settings)
        #expect(settings.unwantedFiles.isEmpty)
    }

    @Test func prioritiesAreKeptOnlyForFilesNotAtNormal() throws {
        var settings = StoredTorrent(downloadDirectory: "/downloads", addedDate: 0)
        try Self.apply(
            Self.changes {
                $0.priorityHigh = .indices([3])
                $0.priorityLow = .indices([5, 7])
            }, to: &settings)
        #expect(
            settings.filePriorities == [
                3: Priority.high.rawValue, 5: Priority.low.rawValue, 7: Priority.low.rawValue,
            ])
        try Self.apply(Self.changes { $0.priorityNormal = .indices([5]) }, to: &settings)
        #expect(settings.filePriorities == [3: Priority.high.rawValue, 7: Priority.low.rawValue])
    }

    @Test func anIndexOutOfRangeChangesNothing() {
        var settings = StoredTorrent(downloadDirectory: "/downloads", addedDate: 0)
        let outOfRange = Self.changes {
            $0.filesUnwanted = .indices([0, 1])
            $0.priorityHigh = .indices([Self.fileCount])
        }
        #expect(throws: RPCFailure("file index out of range")) { try Self.apply(outOfRange, to: &settings) }
        #expect(settings.unwantedFiles.isEmpty)
        #expect(settings.filePriorities.isEmpty)
    }
}
