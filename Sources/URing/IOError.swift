import Glibc

/// A failed I/O operation: which operation, and the errno the kernel returned.
public struct IOError: Error, Equatable, CustomStringConvertible {
    public let operation: OperationKind
    public let errno: Errno

    public init(_ operation: OperationKind, errno: Errno) {
        self.operation = operation
        self.errno = errno
    }

    /// From a negative kernel result (`-errno`).
    init(_ operation: OperationKind, result: Int32) {
        self.init(operation, errno: Errno(rawValue: -result))
    }

    public var description: String { "\(operation) failed: \(errno)" }
}

/// Why io_uring cannot be used on this machine, with the fix, in words a user can act on.
public struct RingUnavailableError: Error, CustomStringConvertible {
    public let errno: Errno
    public let description: String

    /// Explains an `io_uring_setup` failure. `disabledSetting` is the value of
    /// `/proc/sys/kernel/io_uring_disabled` when it could be read.
    public static func explaining(setupErrno errno: Errno, disabledSetting: Int?) -> RingUnavailableError {
        let reason: String
        switch errno {
        case .noFunction:
            reason =
                "this kernel has no io_uring (it needs Linux 5.11 or newer built with CONFIG_IO_URING), "
                + "or a seccomp filter (a container runtime's default profile) blocks it; "
                + "run on a newer kernel or allow the io_uring_setup, io_uring_enter and io_uring_register syscalls"
        case .notPermitted where disabledSetting == 2:
            reason =
                "io_uring is disabled by the sysctl kernel.io_uring_disabled=2; "
                + "enable it with `sysctl -w kernel.io_uring_disabled=0`"
        case .notPermitted where disabledSetting == 1:
            reason =
                "io_uring is limited to the group in kernel.io_uring_group (kernel.io_uring_disabled=1); "
                + "run as a member of that group or set `sysctl -w kernel.io_uring_disabled=0`"
        case .notPermitted, .permissionDenied:
            reason =
                "the kernel refused io_uring (a seccomp or LSM policy, or kernel.io_uring_disabled); "
                + "allow the io_uring syscalls for this process"
        case .noMemory:
            reason =
                "the kernel could not lock memory for the ring (RLIMIT_MEMLOCK, `ulimit -l`, is too low for a user without CAP_IPC_LOCK); "
                + "raise it with `ulimit -l unlimited` or LimitMEMLOCK=infinity in the service unit"
        case .tooManyOpenFiles:
            reason =
                "the process has no file descriptor left for the ring (`ulimit -n` is too low for what it holds); "
                + "raise it with `ulimit -n` or LimitNOFILE= in the service unit"
        case .tooManyOpenFilesInSystem:
            reason = "the system has no file descriptor left for the ring (fs.file-max); close some programs"
        case .invalidArgument:
            reason = "the kernel rejected the ring's parameters; it is probably older than Linux 5.11"
        default:
            reason = "io_uring_setup failed with \(errno)"
        }
        return RingUnavailableError(errno: errno, description: "io_uring is unavailable: \(reason).")
    }

    /// A kernel whose ring lacks a feature Potluck cannot work without.
    static func missing(_ what: String) -> RingUnavailableError {
        RingUnavailableError(
            errno: .notSupported,
            description:
                "io_uring is unavailable: this kernel's io_uring lacks \(what); Potluck needs Linux 5.11 or newer."
        )
    }
}
