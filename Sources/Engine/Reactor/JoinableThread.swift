import Glibc
import Synchronization
import URing

/// A thread whose start is checked: `pthread_create` fails at the process's or the pids cgroup's
/// thread limit, and a caller must hear it rather than wait for a thread that never ran (Foundation's
/// `Thread.start` drops that error).
public final class JoinableThread: @unchecked Sendable {
    private var handle = pthread_t()
    private var joined = false
    private let body: () -> Void
    private let finished = Atomic<Bool>(false)

    /// Whether the body has returned (a join would not wait).
    public var hasFinished: Bool { finished.load(ordering: .acquiring) }

    /// Starts `body` on a new thread.
    public init(_ body: @escaping () -> Void) throws(SyscallError) {
        self.body = body
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(
            &handle, nil,
            { raw in
                let thread = Unmanaged<JoinableThread>.fromOpaque(raw!).takeRetainedValue()
                thread.body()
                thread.finished.store(true, ordering: .releasing)
                return nil
            }, context)
        guard created == 0 else {
            // The thread never ran: take back the reference it would have released, and do not join.
            Unmanaged<JoinableThread>.fromOpaque(context).release()
            joined = true
            throw SyscallError("pthread_create", errno: Errno(rawValue: created))
        }
    }

    /// Waits for the body to return. Idempotent.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(handle, nil)
    }
}
