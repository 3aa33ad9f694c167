import Glibc
import Testing

@testable import Engine

/// A torrent's inbox of routed peers holds at most `maximumWaiting` sockets until the torrent takes
/// them: peers redialling through a long check cannot use up the process's descriptors.
@Suite struct IncomingInboxTests {
    @Test func aFullInboxRefusesUntilItsSocketsAreTaken() {
        let inbox = IncomingInbox()
        let descriptors = (0...IncomingInbox.maximumWaiting).map { _ in dup(0) }
        defer { for fd in descriptors { close(fd) } }
        for fd in descriptors.dropLast() {
            #expect(inbox.deliver(RoutedConnection(fd: fd, plaintextRead: nil)) == nil)
        }
        let refusal = inbox.deliver(RoutedConnection(fd: descriptors.last!, plaintextRead: nil))
        #expect(refusal?.contains("not taking peers yet") == true, "\(refusal ?? "taken")")
        var taken: [RoutedConnection] = []
        inbox.take(into: &taken)
        #expect(taken.count == IncomingInbox.maximumWaiting)
        #expect(inbox.deliver(RoutedConnection(fd: descriptors.last!, plaintextRead: nil)) == nil)
        inbox.take(into: &taken)
        inbox.close()
        #expect(
            inbox.deliver(RoutedConnection(fd: descriptors[0], plaintextRead: nil))
                == "its torrent has stopped")
    }
}
