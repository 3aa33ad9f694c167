import Dispatch
import Locking
import TLS
import URing

/// Makes a ``TLSContext`` on a background queue: loading the system's certificate store reads and
/// parses files, which the reactor must not wait for. The reactor asks with ``context()`` and, while it
/// is loading, tries again later; the finished load wakes the ring of the loader that started it.
///
/// Invariants: one load at most per CA file and cache, started by the first call; its result (a context
/// or the reason there is none) is then given to every call.
final class TLSContextLoader: Sendable {
    fileprivate enum State {
        case loading
        case loaded(Result<TLSContext, TLSError>)
    }

    private let cache: TLSContextCache
    private let extraCAFile: String?
    private let waker: RingWaker?

    init(extraCAFile: String?, waker: RingWaker?, cache: TLSContextCache = .shared) {
        self.extraCAFile = extraCAFile
        self.waker = waker
        self.cache = cache
    }

    private var key: String { extraCAFile ?? "" }

    /// Whether a load has finished (``context()`` then answers at once).
    var isLoaded: Bool {
        cache.states.withLock {
            if case .loaded = $0[key] { true } else { false }
        }
    }

    /// The context once loaded (or why it could not be); nil while it loads.
    func context() -> Result<TLSContext, TLSError>? {
        let (loaded, start) = cache.states.withLock { states -> (Result<TLSContext, TLSError>?, Bool) in
            switch states[key] {
            case nil:
                states[key] = .loading
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
                cache.states.withLock { $0[key] = .loaded(result) }
                waker?.wake()
            }
        }
        return loaded
    }
}

/// The contexts loaded in a process, by extra CA file: every torrent's trackers and web seeds share one,
/// each holding the whole system store (a load per torrent cost 30 ms and its own copy of the store).
/// Kept for the process's life: a changed store or CA file is read at the next start.
final class TLSContextCache: Sendable {
    static let shared = TLSContextCache()

    fileprivate let states = Lock<[String: TLSContextLoader.State]>([:])
}
