import Glibc
import TorrentModel
import URing

// The store's bookkeeping per operation and per file.
extension PieceStore {
    enum IOKind {
        case read
        case write
        case sync
        /// Reserves the whole file before its first write.
        case preallocate
    }

    /// One read, write or sync on one file; a request is one or more of them.
    struct IOOperation {
        let request: OperationSlot
        let kind: IOKind
        let fileIndex: Int
        var fileOffset: Int64
        /// Where the rest of the transfer goes or comes from; nil for a sync.
        var address: UnsafeMutableRawPointer?
        var remainingBytes: Int
        let fixedBufferIndex: UInt16?
        var retries: UInt8 = 0
        /// Issued on the file's `O_DIRECT` descriptor.
        var isDirect = false
    }

    struct FileState {
        var fd: Int32 = -1
        /// The file `fd` is open on, to notice it being replaced under the store (see
        /// ``replacedFileError(among:)``).
        var identity: FileIdentity?
        /// The file as it was when closed (for its descriptor) with writes not yet synced: opened again,
        /// it must be the same file, or those writes are lost (removed by the user, say, and created
        /// anew by the next write or the flush), and the pieces they carried with them.
        var closedUnsynced: FileIdentity?
        /// Written since ``findReplacedFile()`` last looked: a file nobody writes to costs it nothing.
        var writtenSinceLook = false
        /// The same file opened with `O_DIRECT` for aligned writes; -1 when not open or not supported.
        var directFD: Int32 = -1
        /// The device refused an aligned `O_DIRECT` write (it wants a larger alignment): the file's
        /// writes go through the page cache from then on. Its descriptor stays open until the file
        /// closes, since writes already queued on the ring name it.
        var directRefused = false
        /// Opened `O_RDONLY`: by the store's options, or because the file may not be written (reads
        /// only were queued).
        var openedReadOnly = false
        var operationsInFlight = 0
        /// Writes and syncs in flight: at most `writesInFlightPerFile` (`directWritesInFlightPerFile`
        /// while the file has its `O_DIRECT` descriptor).
        var writesInFlight = 0
        /// Writes and syncs in the order they were asked for.
        var queuedWrites: [IOOperation] = []
        /// Reads are not limited per file: they rarely touch the inode lock.
        var queuedReads: [IOOperation] = []
        var lastUseTick: UInt64 = 0
        /// Written since the last flush was asked for.
        var isDirty = false
        /// Preallocation was asked of the kernel (whether or not the file system could do it).
        var isPreallocated = false
        /// A preallocation is in flight: writes wait for it, so a full disk fails it and not a write.
        var isPreallocating = false
        var isStalled = false

        var hasQueuedWork: Bool { !queuedWrites.isEmpty || !queuedReads.isEmpty }
    }
}
