#if POTLUCK_TSAN
    import Glibc

    /// What guards state that threads share, as `Synchronization.Mutex` does, with the same `withLock`.
    ///
    /// Built with `-Xswiftc -DPOTLUCK_TSAN` (the ThreadSanitizer build, see the README), it is a pthread
    /// mutex: Swift's `Mutex` waits on a futex that ThreadSanitizer cannot see, so every access it guards
    /// would be reported as a race. Otherwise it is `Mutex` itself, at no cost.
    public final class Lock<Value>: @unchecked Sendable {
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        /// Behind a pointer rather than a stored property: Swift's exclusivity checks on a property are
        /// reported by ThreadSanitizer on their own, outside the mutex (seen with an empty `Value`).
        private let value = UnsafeMutablePointer<Value>.allocate(capacity: 1)

        public init(_ initialValue: Value) {
            value.initialize(to: initialValue)
            pthread_mutex_init(mutex, nil)
        }

        deinit {
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
            value.deinitialize(count: 1)
            value.deallocate()
        }

        public func withLock<Result, Failure: Error>(
            _ body: (inout Value) throws(Failure) -> Result
        ) throws(Failure) -> Result {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body(&value.pointee)
        }
    }
#else
    import Synchronization

    /// What guards state that threads share: `Synchronization.Mutex`, except in the ThreadSanitizer build
    /// (`-Xswiftc -DPOTLUCK_TSAN`), where it is a pthread mutex that ThreadSanitizer can see.
    public typealias Lock<Value> = Mutex<Value>
#endif
