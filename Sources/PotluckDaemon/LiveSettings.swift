import Locking
import TransmissionRPC

/// The settings that other threads read while a reload may change them: the HTTP server reads the
/// access policy at each request, the completion watcher the script at each completion.
final class LiveSettings: Sendable {
    private let state: Lock<(policy: AccessPolicy, onCompleteScript: String?)>

    init(policy: AccessPolicy, onCompleteScript: String?) {
        state = Lock((policy, onCompleteScript))
    }

    var policy: AccessPolicy {
        get { state.withLock { $0.policy } }
        set { state.withLock { $0.policy = newValue } }
    }

    var onCompleteScript: String? {
        get { state.withLock { $0.onCompleteScript } }
        set { state.withLock { $0.onCompleteScript = newValue } }
    }
}
