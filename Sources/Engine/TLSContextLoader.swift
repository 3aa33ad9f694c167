import Dispatch
import Synchronization
import TLS
import URing

/// Makes a ``TLSContext`` on a background queue: loading the system's certificate store reads and
/// parses files, which the reactor must not wait for. The reactor asks with ``context()`` and, while it
/// is loading, tries again later; the finished load wakes the ring.
///
/// Invariants: one load at most, started by the first call; its result (a context or the reason there
/// is none) is then given to every call.
final class TLSContextLoader: Sendable {
    private enum State {
        case idle
        case loading
        case loaded(Result<TLSContext, TLSError>)
    }

    private let state = Mutex(State.idle)
    private let extraCAFile: String?
    private let waker: RingWaker?

    init(extraCAFile: String?, waker: RingWaker?) {
        self.extraCAFile = extraCAFile
        self.waker = waker
    }

    /// Whether a load has finished (``context()`` then answers at once).
    var isLoaded: Bool {
        state.withLock {
            if case .loaded = $0 { true } else { false }
        }
    }

    /// The context once loaded (or why it could not be); nil while it loads.
    func context() -> Result<TLSContext, TLSError>? {
        let (loaded, start) = state.withLock { state -> (Result<TLSContext, TLSError>?, Bool) in
            switch state {
            case .idle:
                state = .loading
                return (nil, true)
            case .loading: return (nil, false)
            case .loaded(let result): return (result, false)
            }
        }
        if start {
            DispatchQueue.global().async { [self] in
                let result: Result<TLSContext, TLSError>
                do throws(TLSError) {
                    result = .success(try TLSContext(extraCAFile: extraCAFile))
                } catch {
                    result = .failure(error)
                }
                state.withLock { $0 = .loaded(result) }
                waker?.wake()
            }
        }
        return loaded
    }
}
