import CLibUring
import Glibc

/// An errno value with its symbolic name, as kernels and users know it.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let notPermitted = Errno(rawValue: EPERM)
    public static let noSuchFile = Errno(rawValue: ENOENT)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let ioError = Errno(rawValue: EIO)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let tryAgain = Errno(rawValue: EAGAIN)
    public static let noMemory = Errno(rawValue: ENOMEM)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let resourceBusy = Errno(rawValue: EBUSY)
    public static let fileExists = Errno(rawValue: EEXIST)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let noSpace = Errno(rawValue: ENOSPC)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let noFunction = Errno(rawValue: ENOSYS)
    public static let timerExpired = Errno(rawValue: ETIME)
    public static let noBuffers = Errno(rawValue: ENOBUFS)
    public static let notSupported = Errno(rawValue: EOPNOTSUPP)
    public static let addressFamilyNotSupported = Errno(rawValue: EAFNOSUPPORT)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let canceled = Errno(rawValue: ECANCELED)
    public static let quotaExceeded = Errno(rawValue: EDQUOT)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)

    /// The symbolic name (`ECONNREFUSED`) where known.
    public var name: String? {
        guard let name = strerrorname_np(rawValue) else { return nil }
        return String(cString: name)
    }

    /// `Connection refused (ECONNREFUSED)`.
    public var description: String {
        let message = String(cString: strerror(rawValue))
        return name.map { "\(message) (\($0))" } ?? "\(message) (errno \(rawValue))"
    }
}
