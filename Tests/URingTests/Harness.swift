import Glibc
import Testing

@testable import URing

/// Drives a ring in tests: submits, waits and files completions by token until the one asked for arrives.
final class Harness {
    let ring: Ring
    private var arrived: [CompletionToken: [Completion]] = [:]
    private var nextSlot: UInt32 = 1

    init(_ options: RingOptions = RingOptions()) throws {
        ring = try Ring(options: options)
    }

    /// A fresh slot for each operation: tests do not reuse slots unless they mean to.
    func slot() -> OperationSlot {
        defer { nextSlot += 1 }
        return OperationSlot(index: nextSlot, generation: 1)
    }

    @discardableResult
    func enqueue(_ operation: Operation, flags: SubmissionFlags = []) throws -> CompletionToken {
        try ring.enqueue(operation, for: slot(), flags: flags)
    }

    /// Waits (bounded, so a broken ring fails the test instead of hanging it) for the next completion
    /// of `token`.
    func completion(of token: CompletionToken, within timeout: Duration = .seconds(10)) throws -> Completion {
        let deadline = ContinuousClock.now + timeout
        while true {
            if var queue = arrived[token], !queue.isEmpty {
                let first = queue.removeFirst()
                arrived[token] = queue
                return first
            }
            guard ContinuousClock.now < deadline else {
                throw HarnessError.timedOut(token)
            }
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(100))
            ring.drain { arrived[$0.token, default: []].append($0) }
        }
    }

    /// Runs one operation to completion.
    func perform(_ operation: Operation) throws -> Completion {
        try completion(of: enqueue(operation))
    }

    /// Every completion that arrived for `token` so far (after one more non-blocking look).
    func collected(_ token: CompletionToken) throws -> [Completion] {
        try ring.submitAndWait(minimumCompletions: 0)
        ring.drain { arrived[$0.token, default: []].append($0) }
        defer { arrived[token] = nil }
        return arrived[token] ?? []
    }
}

enum HarnessError: Error {
    case timedOut(CompletionToken)
}

/// A temporary directory, removed with its contents when the test ends.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/potluck-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    deinit {
        _ = system("rm -rf '\(path)'")
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a failure replays.
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}
