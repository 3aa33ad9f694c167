import Foundation
import Glibc
import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// The watch folder: what is dropped in is added once and renamed `.added`; what is not a torrent
/// file it may read is refused, and nothing blocks the daemon's loop.
@Suite struct WatchFolderTests {
    @Test func aTorrentDroppedTwiceIsAddedOnceAndAFIFOIsRefusedWithoutBlocking() throws {
        let fixture = try DaemonQueueTests.Fixture()
        let watch = fixture.root.appendingPathComponent("watch")
        var folder = try WatchFolder(path: watch.path)
        let torrent = DaemonQueueTests.Fixture.torrent("dropped")
        try Data(torrent).write(to: watch.appendingPathComponent("a.torrent"))
        // A FIFO without a writer: opened without O_NONBLOCK, reading it would wait for ever.
        #expect(mkfifo(watch.appendingPathComponent("pipe.torrent").path, 0o644) == 0)

        let first = folder.scan(into: fixture.backend)
        #expect(first.contains { $0.hasPrefix("watch folder: added a.torrent as #") }, "\(first)")
        #expect(first.contains { $0.hasPrefix("watch folder: cannot add pipe.torrent") }, "\(first)")
        #expect(FileManager.default.fileExists(atPath: watch.appendingPathComponent("a.torrent.added").path))

        // The same file dropped again: said to be known, and renamed over the earlier `.added`.
        try Data(torrent).write(to: watch.appendingPathComponent("a.torrent"))
        let second = folder.scan(into: fixture.backend)
        #expect(second.contains { $0.hasPrefix("watch folder: a.torrent is already #") }, "\(second)")
        #expect(!FileManager.default.fileExists(atPath: watch.appendingPathComponent("a.torrent").path))
        #expect(folder.scan(into: fixture.backend).isEmpty, "the FIFO is not tried again while unchanged")
    }
}
