import Glibc

/// The gather list of one `sendmsg`: up to `capacity` byte ranges sent as one stream, in order. Owned by
/// the caller and reused from send to send; it must stay alive and unchanged while a `.sendMessage` that
/// names it is in flight.
///
/// Invariants: `count <= capacity`; the message header always points at the first unsent range, and
/// `remainingBytes` is the sum of the ranges from there.
public final class SendVector {
    /// Linux's `UIO_MAXIOV` (IOV_MAX), the most ranges one sendmsg takes.
    public static let maximumCapacity = 1024
    public let capacity: Int
    private let vectors: UnsafeMutablePointer<iovec>
    let message: UnsafeMutablePointer<msghdr>
    /// Ranges appended since the last `removeAll`.
    public private(set) var count = 0
    private var first = 0
    public private(set) var remainingBytes = 0

    public init(capacity: Int) {
        precondition(capacity > 0 && capacity <= Self.maximumCapacity, "an iovec count the kernel takes")
        self.capacity = capacity
        vectors = .allocate(capacity: capacity)
        message = .allocate(capacity: 1)
        message.initialize(to: msghdr())
    }

    deinit {
        vectors.deallocate()
        message.deallocate()
    }

    public var isFull: Bool { count == capacity }

    /// The ranges still to send, in order (what a simulated kernel reads).
    public var unsentRanges: [UnsafeRawBufferPointer] {
        (first..<count).map {
            UnsafeRawBufferPointer(start: vectors[$0].iov_base, count: vectors[$0].iov_len)
        }
    }

    public func removeAll() {
        count = 0
        first = 0
        remainingBytes = 0
    }

    /// Adds a range after the others (an empty one is skipped).
    public func append(_ bytes: UnsafeRawBufferPointer) {
        precondition(count < capacity, "the send vector is full")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: bytes.count)
        count += 1
        remainingBytes += bytes.count
    }

    /// Drops the first `sent` bytes (what a partial send took) and points the header at the rest.
    public func advance(by sent: Int) {
        precondition(sent >= 0 && sent <= remainingBytes, "sent more than was queued")
        remainingBytes -= sent
        var left = sent
        while left > 0 {
            let length = vectors[first].iov_len
            if left >= length {
                left -= length
                first += 1
            } else {
                vectors[first].iov_base += left
                vectors[first].iov_len -= left
                left = 0
            }
        }
        prepareHeader()
    }

    func prepareHeader() {
        message.pointee = msghdr()
        message.pointee.msg_iov = vectors + first
        message.pointee.msg_iovlen = count - first
    }
}
