import Buffers
import Glibc
import Metainfo
import TorrentModel
import URing

/// Maps pieces onto a torrent's files and moves them between buffers and disk through the reactor's ring.
///
/// The store issues its operations on the ring with tokens whose owner is ``completionOwner`` (or the
/// owner given at creation); the reactor hands every such completion to ``handle(_:into:)``, which
/// returns what finished. The store never submits, waits or blocks on the ring itself: the only
/// blocking calls are opening files (rare, and capped by ``Options/maxOpenFiles``) and looking whether
/// the open ones are still where their paths lead (``findReplacedFile()``, ``flush()``), which costs
/// about as much. Serving a block from the page cache (``residentBlock(_:now:)``) maps a file and asks
/// which of its pages are cached: calls that never wait on the disk.
///
/// Invariants:
/// - Used from one thread only (the reactor's).
/// - At most ``writesInFlightPerFile`` writes and syncs are in flight per file (``directWritesInFlightPerFile``
///   for a file with its `O_DIRECT` descriptor); the rest wait in the file's queue (ext4 serialises
///   buffered writes on the inode lock, so more only burn CPU).
/// - A file's descriptor is closed only when no operation on it is in flight.
/// - Every request ends in exactly one event, and every buffer lent to the store comes back in it.
/// - Nothing is written outside the download directory: paths are opened beneath its descriptor,
///   never following a symbolic link.
public final class PieceStore {
    /// The owner byte of this store's completion tokens, for the reactor's routing.
    public static let completionOwner: UInt8 = 2
    /// More writes in flight to one file contend on its inode lock (measured: 3× the CPU at 8 in a
    /// sequential write benchmark). Four, not two: in a 1 GiB download two left pieces queueing in memory
    /// behind the disk, and four measured faster (2.1–3.1 s against 2.5–4.8 s on this machine).
    public static let maxWritesInFlightPerFile = 4
    /// Small pieces are written one by one, and four of them in flight (64 KiB of 16 KiB pieces) held a
    /// download from one libtorrent seeder to 13 MB/s (1.3 s for 16 MiB; 0.4 s with 32 in flight): a file
    /// takes more writes while together they stay within this, up to `maxSmallWritesInFlightPerFile`.
    public static let smallWriteBytesInFlightPerFile = 1 << 20
    public static let maxSmallWritesInFlightPerFile = 64

    /// `O_DIRECT` writes skip the page-cache copy that made buffered ones contend, and more of them in
    /// flight keep the device busy. Measured (1 GiB in 1 MiB pieces from four Potluck seeders on
    /// loopback, runs alternated): with 4 in flight 55–60 of the 64 piece buffers waited for the disk
    /// and the download took 2.11–2.93 s; with 32, 1.82–2.68 s, each run faster than its pair. `fio`
    /// writes 1 MiB at random offsets of a new file here at 1.2 GB/s at depth 4, 1.6 GB/s at 16.
    public static let directWriteBytesInFlightPerFile = 32 << 20

    /// Writes and syncs in flight per file, for this torrent's piece length.
    public let writesInFlightPerFile: Int
    /// The same for a file written with `O_DIRECT`: never fewer than `writesInFlightPerFile`.
    public let directWritesInFlightPerFile: Int
    /// How often an operation interrupted by `EINTR`/`EAGAIN` is tried again before it fails.
    static let maxRetries: UInt8 = 8

    /// Limits and behaviour, fixed at creation.
    public struct Options: Sendable {
        /// Descriptors the store keeps open at most; idle files are closed least recently used first.
        public var maxOpenFiles: Int
        /// Operations on the ring at once; more wait in their files' queues.
        public var maxOperationsInFlight: Int
        /// Requests accepted at once; beyond, requests fail with ``StorageError/Reason/overloaded``.
        public var maxRequestsInFlight: Int
        /// Reserve each file's full size (`fallocate` on the ring) before its first write, instead of
        /// leaving it sparse: less fragmentation, and a full disk is found at once.
        public var preallocate: Bool
        /// Open files read-only and refuse writes (seeding from read-only storage, rechecks).
        public var readOnly: Bool
        /// Write aligned spans with `O_DIRECT`, from the buffer straight to the device: no copy into the
        /// page cache and no dirty pages for the final sync to write back (measured: a 1 GiB sequential
        /// write took 0.09 s of CPU this way against 0.3–2.6 s buffered). Unaligned spans (a file's
        /// last bytes, files that start mid-block) and file systems without `O_DIRECT` use the page
        /// cache. Each open file then holds a second descriptor.
        public var directWrites: Bool
        /// The pool registered with the ring (`Ring.registerBuffers`): its slots are read and written
        /// with fixed-buffer operations, which skip per-I/O page pinning.
        public var registeredPool: BufferPool?

        /// The defaults suit one torrent on one reactor: 64 descriptors, 256 operations, sparse files.
        public init(
            maxOpenFiles: Int = 64, maxOperationsInFlight: Int = 256, maxRequestsInFlight: Int = 4096,
            preallocate: Bool = false, readOnly: Bool = false, directWrites: Bool = false,
            registeredPool: BufferPool? = nil
        ) {
            self.maxOpenFiles = maxOpenFiles
            self.maxOperationsInFlight = maxOperationsInFlight
            self.maxRequestsInFlight = maxRequestsInFlight
            self.preallocate = preallocate
            self.readOnly = readOnly
            self.directWrites = directWrites
            self.registeredPool = registeredPool
        }
    }

    private struct Request {
        let kind: StorageRequest
        var remainingOperations: Int
        var error: StorageError?
    }

    private enum OpenOutcome {
        case opened
        case noDescriptorFree
        case failed(StorageError)
    }

    /// The torrent's files and piece arithmetic.
    public let layout: FileLayout
    /// The limits and behaviour the store was created with.
    public let options: Options
    private let ring: Ring
    private let directoryPath: String
    /// The download folder, open while any file is (see ``closeIdleFiles()``).
    private var openDirectory: BeneathDirectory?
    private var operations: OperationTable<IOOperation>
    private var requests: OperationTable<Request>
    private var files: [FileState]
    /// Per file, whether the user wants it (see ``setWantedFiles(_:)``).
    private var fileWanted: [Bool]
    private var openFileIndices: [Int] = []
    private var dirtyFileIndices: [Int] = []
    /// Files with queued work that could not start (no descriptor or no operation slot free).
    private var stalledFileIndices: [Int] = []
    private var useTick: UInt64 = 0
    /// The open files mapped for sends out of the page cache (see ``residentBlock(_:now:)``).
    private var pageCache: PageCacheMappings
    /// Events of requests that finished outside `handle`, delivered at the next one.
    private var readyEvents: [StorageEvent] = []
    /// A nop is on the ring to bring `readyEvents` to the next `handle`.
    private var wakeScheduled = false
    private let wakeSlot: OperationSlot

    /// Opens the download directory (which must exist); files are opened when first used.
    public init(
        layout: FileLayout, downloadDirectory: String, ring: Ring, options: Options = Options(),
        owner: UInt8 = PieceStore.completionOwner, tenant: UInt16 = 0
    ) throws(StorageError) {
        precondition(options.maxOpenFiles > 0 && options.maxOperationsInFlight > 0, "limits must be positive")
        precondition(options.maxRequestsInFlight > 0, "limits must be positive")
        self.layout = layout
        self.options = options
        self.ring = ring
        let pieceLength = max(1, layout.geometry.pieceLength)
        writesInFlightPerFile = min(
            Self.maxSmallWritesInFlightPerFile,
            max(Self.maxWritesInFlightPerFile, Self.smallWriteBytesInFlightPerFile / pieceLength))
        directWritesInFlightPerFile = min(
            Self.maxSmallWritesInFlightPerFile,
            max(writesInFlightPerFile, Self.directWriteBytesInFlightPerFile / pieceLength))
        directoryPath = downloadDirectory
        openDirectory = try BeneathDirectory.open(path: downloadDirectory)
        operations = OperationTable(capacity: options.maxOperationsInFlight, owner: owner, tenant: tenant)
        requests = OperationTable(capacity: options.maxRequestsInFlight, owner: owner, tenant: tenant)
        files = Array(repeating: FileState(), count: layout.files.count)
        pageCache = PageCacheMappings(fileCount: layout.files.count)
        fileWanted = Array(repeating: true, count: layout.files.count)
        // Beyond every table index, so it never matches an operation's slot.
        wakeSlot = OperationSlot(
            owner: owner, tenant: tenant, index: OperationSlot.maximumIndex, generation: 0)
    }

    deinit {
        for index in openFileIndices {
            Glibc.close(files[index].fd)
            closeDirectDescriptor(index)
            pageCache.retire(index)
        }
        if let openDirectory { Glibc.close(openDirectory.fd) }
    }

    /// The owner byte on this store's completion tokens.
    public var owner: UInt8 { operations.owner }
    /// The ring user (a torrent on a shared reactor) stamped on this store's tokens.
    public var tenant: UInt16 { operations.tenant }
    /// Operations on the ring now.
    public var operationsInFlight: Int { operations.inUseCount }
    /// Requests not yet reported.
    public var requestsInFlight: Int { requests.inUseCount }
    /// Descriptors open now (at most ``Options/maxOpenFiles``).
    public var openFileCount: Int { openFileIndices.count }
    /// Whether the store holds any descriptor now (a file, or the download folder).
    public var holdsDescriptors: Bool { openDirectory != nil || !openFileIndices.isEmpty }

    /// Writes in flight to one file (for tests of the per-file limit).
    func writesInFlight(toFile index: Int) -> Int { files[index].writesInFlight }

    // MARK: Requests

    /// Writes a verified piece from `slot` to its files, skipping BEP 47 padding. Ends in
    /// `.pieceWritten(piece, slot)` once every byte is in the page cache, or `.failed`.
    public func writePiece(_ piece: PieceIndex, from slot: BufferSlot, in pool: BufferPool) {
        let kind = StorageRequest.writePiece(piece, slot)
        defer { scheduleDeliveryIfNeeded() }
        guard piece.int < layout.geometry.pieceCount else {
            return reject(kind, .write, reason: .outOfRange)
        }
        guard !options.readOnly else {
            return reject(kind, .write, reason: .system(Errno(rawValue: EROFS)))
        }
        transferPiece(piece, slot: slot, pool: pool, kind: kind, ioKind: .write)
    }

    /// Reads a whole piece into `slot` (padding regions as zeros, without I/O). Ends in
    /// `.pieceRead(piece, slot)` or `.failed`; a file that does not exist is a failure.
    public func readPiece(_ piece: PieceIndex, into slot: BufferSlot, in pool: BufferPool) {
        let kind = StorageRequest.readPiece(piece, slot)
        defer { scheduleDeliveryIfNeeded() }
        guard piece.int < layout.geometry.pieceCount else {
            return reject(kind, .read, reason: .outOfRange)
        }
        transferPiece(piece, slot: slot, pool: pool, kind: kind, ioKind: .read)
    }

    /// Reads a block into `buffer`, which must stay valid until the block's event. Ends in
    /// `.blockRead(token, block)` or `.failed`; a file never written is a failure (nothing to seed).
    public func readBlock(_ block: BlockRange, into buffer: UnsafeMutableRawBufferPointer, token: UInt64) {
        readBlock(block, into: buffer, fixedBufferIndex: nil, token: token)
    }

    private func readBlock(
        _ block: BlockRange, into buffer: UnsafeMutableRawBufferPointer, fixedBufferIndex: UInt16?,
        token: UInt64
    ) {
        let kind = StorageRequest.readBlock(token: token, block)
        defer { scheduleDeliveryIfNeeded() }
        let geometry = layout.geometry
        guard block.piece.int < geometry.pieceCount, block.length > 0,
            Int(block.offset) + Int(block.length) <= geometry.length(of: block.piece)
        else { return reject(kind, .read, reason: .outOfRange) }
        guard let base = buffer.baseAddress, buffer.count >= Int(block.length) else {
            return reject(
                kind, .read,
                reason: .bufferTooSmall(requiredBytes: Int(block.length), availableBytes: buffer.count))
        }
        transfer(
            offset: geometry.offset(of: block.piece) + Int64(block.offset), length: Int(block.length),
            base: base,
            fixedBufferIndex: fixedBufferIndex, kind: kind, ioKind: .read)
    }

    /// Reads a block to the start of a pool slot, with a fixed-buffer read when the pool is the
    /// registered one: the way to serve a peer's request, sending from the same slot afterwards. Ends in
    /// `.blockRead(token, block)` or `.failed`.
    public func readBlock(_ block: BlockRange, into slot: BufferSlot, in pool: BufferPool, token: UInt64) {
        let fixedIndex = pool === options.registeredPool ? UInt16(truncatingIfNeeded: slot.index) : nil
        readBlock(block, into: pool.bytes(of: slot), fixedBufferIndex: fixedIndex, token: token)
    }

    /// The block's bytes in the page cache, pinned until `mapping.unpin()`, when the block lies in one
    /// file that is open and every page of it is cached: a send from them is the only copy, and does
    /// not wait on the disk. Nil otherwise (padding, a block across files, a file closed or not
    /// mappable, pages not cached): read the block instead, which also brings it into the page cache.
    public func residentBlock(_ block: BlockRange, now: UInt64) -> MappedBlock? {
        let geometry = layout.geometry
        guard block.piece.int < geometry.pieceCount, block.length > 0,
            Int(block.offset) + Int(block.length) <= geometry.length(of: block.piece)
        else { return nil }
        var only: FileSpan?
        var spanCount = 0
        let offset = geometry.offset(of: block.piece) + Int64(block.offset)
        layout.forEachSpan(offset: offset, length: Int(block.length)) { span in
            spanCount += 1
            only = span
        }
        guard spanCount == 1, let span = only, !span.isPadding, files[span.fileIndex].fd >= 0,
            let resident = pageCache.block(
                ofFile: span.fileIndex, fd: files[span.fileIndex].fd,
                length: layout.files[span.fileIndex].length,
                offset: Int(span.fileOffset), count: span.length, now: now)
        else { return nil }
        // In use, though no I/O goes through its descriptor: not the one to close for another file.
        useTick += 1
        files[span.fileIndex].lastUseTick = useTick
        return resident
    }

    /// Takes the pages that sends from the mappings faulted in out of the process's page tables (the
    /// page cache keeps them). The engine calls it every second too, so that a torrent that stopped
    /// sending does not keep up to `PageCacheMappings.bytesBetweenDrops` of them in its resident size.
    public func dropMappedPages() { pageCache.dropPages() }

    /// Syncs (`fdatasync`) every file written since the last flush. Ends in `.flushed` or `.failed`; the
    /// engine calls it before saving resume data, so that what the data claims is on disk.
    /// A file that was written and then replaced fails the flush: syncing the descriptor would only
    /// make durable what nobody can see any more.
    public func flush() {
        defer { scheduleDeliveryIfNeeded() }
        if let error = replacedFileError(among: dirtyFileIndices) {
            return readyEvents.append(.failed(.flush, error))
        }
        guard let request = beginRequest(.flush, operationCount: dirtyFileIndices.count) else { return }
        let flushed = dirtyFileIndices
        dirtyFileIndices.removeAll(keepingCapacity: true)
        for index in flushed {
            files[index].isDirty = false
            files[index].queuedWrites.append(
                IOOperation(
                    request: request, kind: .sync, fileIndex: index, fileOffset: 0, address: nil,
                    remainingBytes: 0, fixedBufferIndex: nil))
        }
        for index in flushed { pump(index) }
    }

    /// The first file written since the last look whose path no longer names the file the store writes
    /// to: someone removed, moved or replaced it (by a directory, a symbolic link, another file). Writes
    /// would go on landing in a file no path reaches, and the download would "complete" without it, so
    /// the engine asks this from time to time while downloading, and ``flush()`` looks at every file
    /// written before syncing. Blocking, like an open: a few system calls per file written.
    public func findReplacedFile() -> StorageError? {
        let written = openFileIndices.filter { files[$0].writtenSinceLook }
        for index in written { files[index].writtenSinceLook = false }
        return replacedFileError(among: written)
    }

    /// Every file whose path no longer names the file the store wrote to: the open ones, and those
    /// closed with writes not yet synced. Asked once one is found (a folder swapped in replaces many
    /// at once): a few system calls per such file.
    public func replacedFiles() -> [Int] {
        guard let directory = try? self.directory() else { return [] }
        return files.indices.filter { index in
            guard let identity = files[index].fd >= 0 ? files[index].identity : files[index].closedUnsynced
            else { return false }
            if case .file(let now) = directory.entry(at: layout.files[index].path), now == identity {
                return false
            }
            return true
        }
    }

    private func replacedFileError(among indices: [Int]) -> StorageError? {
        guard !indices.isEmpty else { return nil }
        let directory: BeneathDirectory
        do {
            directory = try self.directory()
        } catch {
            return error
        }
        for index in indices where files[index].fd >= 0 {
            let path = layout.files[index].path
            let entry = directory.entry(at: path)
            if case .file(let identity) = entry, identity == files[index].identity { continue }
            return replaced(index, now: entry)
        }
        return nil
    }

    private func replaced(_ index: Int, now entry: PathEntry) -> StorageError {
        StorageError(
            .write, path: BeneathDirectory.display(layout.files[index].path),
            reason: .replacedWhileWriting(now: entry.description))
    }

    /// Throws unless files can be created and written in the download folder (a read-only file system,
    /// a folder without write permission): a download then stops at once, naming the folder, rather
    /// than at its first piece naming a file. Blocking.
    public func requireWritableFolder() throws(StorageError) {
        try directory().requireWritable(path: directoryPath)
    }

    /// Which files the user wants, one flag per file of the layout (all, until this is called).
    ///
    /// An unwanted file is still written where a piece of a wanted file straddles into it (pieces are
    /// verified whole), but nothing more: it is never preallocated, so it stays sparse, created by the
    /// first such write and holding data only in those bytes; and an empty one is not created. This
    /// keeps the edges in the files themselves rather than in a separate partfile (libtorrent's way):
    /// widening the selection later needs no moving of bytes, and a recheck finds them where they belong.
    public func setWantedFiles(_ wanted: [Bool]) {
        precondition(wanted.count == layout.files.count, "one flag per file of the torrent")
        fileWanted = wanted
    }

    /// Creates the torrent's wanted empty files, which no piece ever writes (symbolic-link entries are
    /// never created). Blocking, like every open; call it once a download starts or completes.
    public func createEmptyFiles() throws(StorageError) {
        guard !options.readOnly else { return }
        for (index, file) in layout.files.enumerated()
        where file.length == 0 && !file.isPadding && !file.attributes.contains(.symlink) && fileWanted[index]
        {
            // One already there is left alone (it may be on a read-only mount being seeded).
            if case .file = try directory().entry(at: file.path) { continue }
            let fd = try directory().openFile(file.path, flags: O_RDWR | O_CREAT)
            Glibc.close(fd)
        }
    }

    // MARK: Completions

    /// Takes one completion whose token carries this store's owner, and appends what finished.
    public func handle(_ completion: Completion, into events: inout [StorageEvent]) {
        let slot = completion.slot
        if slot == wakeSlot {
            wakeScheduled = false
        } else if let operation = operations.context(for: slot) {
            complete(operation, slot: slot, result: completion.result)
        }
        retryStalledFiles()
        events.append(contentsOf: readyEvents)
        readyEvents.removeAll(keepingCapacity: true)
    }

    private func complete(_ operation: IOOperation, slot: OperationSlot, result: Int32) {
        var operation = operation
        if operation.kind == .preallocate {
            files[operation.fileIndex].isPreallocating = false
            // A file system that cannot reserve space leaves the file sparse, which still works.
            let unsupported = result == -EOPNOTSUPP || result == -EINVAL
            let error =
                result < 0 && !unsupported
                ? error(for: operation, reason: .system(Errno(rawValue: -result))) : nil
            // Writes waiting for the reservation would only fill the disk partly: they fail with it.
            if let error { failQueuedWrites(operation.fileIndex, error: error) }
            return finish(operation, slot: slot, error: error)
        }
        if result == -EINVAL && operation.isDirect {
            // The device wants a larger alignment than ours: this file goes through the page cache.
            files[operation.fileIndex].directRefused = true
            return resubmit(operation, slot: slot)
        }
        if result < 0 {
            let errno = Errno(rawValue: -result)
            if (errno == .interrupted || errno == .tryAgain) && operation.retries < Self.maxRetries {
                operation.retries += 1
                return resubmit(operation, slot: slot)
            }
            return finish(operation, slot: slot, error: error(for: operation, reason: .system(errno)))
        }
        let count = Int(result)
        if operation.kind == .write && count > 0 {
            markDirty(operation.fileIndex)
            files[operation.fileIndex].writtenSinceLook = true
        }
        if operation.kind == .sync || count >= operation.remainingBytes {
            return finish(operation, slot: slot, error: nil)
        }
        if count == 0 {
            let reason: StorageError.Reason = operation.kind == .read ? .unexpectedEndOfFile : .noProgress
            return finish(operation, slot: slot, error: error(for: operation, reason: reason))
        }
        // A short transfer: the kernel moved part of it (a write that filled the disk, a signal); the
        // rest goes again from where it stopped.
        operation.fileOffset += Int64(count)
        operation.address = operation.address.map { $0 + count }
        operation.remainingBytes -= count
        resubmit(operation, slot: slot)
    }

    private func resubmit(_ operation: IOOperation, slot: OperationSlot) {
        var operation = operation
        let ringOperation = ringOperation(for: &operation)
        operations.update(slot, to: operation)
        do {
            try ring.enqueue(ringOperation, for: slot)
        } catch {
            finish(operation, slot: slot, error: self.error(for: operation, reason: .system(error.errno)))
        }
    }

    /// Retires an operation that was on the ring.
    private func finish(_ operation: IOOperation, slot: OperationSlot, error: StorageError?) {
        operations.release(slot)
        let index = operation.fileIndex
        files[index].operationsInFlight -= 1
        if operation.kind != .read { files[index].writesInFlight -= 1 }
        if operation.kind == .sync && error != nil {
            // The data is not known to be on disk: the next flush must try again.
            markDirty(index)
        }
        operationEnded(operation.request, error: error)
        pump(index)
    }

    // MARK: Scheduling

    private func transferPiece(
        _ piece: PieceIndex, slot: BufferSlot, pool: BufferPool, kind: StorageRequest, ioKind: IOKind
    ) {
        let length = layout.geometry.length(of: piece)
        let memory = pool.bytes(of: slot)
        guard let base = memory.baseAddress, memory.count >= length else {
            return reject(
                kind, ioKind == .write ? .write : .read,
                reason: .bufferTooSmall(requiredBytes: length, availableBytes: memory.count))
        }
        // `registerBuffers` registers slot i as buffer i, and caps pools at 65535 slots.
        let fixedIndex = pool === options.registeredPool ? UInt16(truncatingIfNeeded: slot.index) : nil
        transfer(
            offset: layout.geometry.offset(of: piece), length: length, base: base,
            fixedBufferIndex: fixedIndex,
            kind: kind, ioKind: ioKind)
    }

    /// Queues one operation per file span of a request (payload bytes `offset..<offset+length`); padding
    /// spans are zero-filled (reads) or skipped (writes) without I/O. Walks the spans twice rather than
    /// collecting them, so serving a block allocates nothing.
    private func transfer(
        offset: Int64, length: Int, base: UnsafeMutableRawPointer, fixedBufferIndex: UInt16?,
        kind: StorageRequest, ioKind: IOKind
    ) {
        var ioCount = 0
        layout.forEachSpan(offset: offset, length: length) { span in
            if !span.isPadding { ioCount += 1 }
        }
        let request = beginRequest(kind, operationCount: ioCount)
        var position = 0
        layout.forEachSpan(offset: offset, length: length) { span in
            defer { position += span.length }
            if span.isPadding {
                if ioKind == .read {
                    (base + position).initializeMemory(as: UInt8.self, repeating: 0, count: span.length)
                }
                return
            }
            guard let request else { return }
            let operation = IOOperation(
                request: request, kind: ioKind, fileIndex: span.fileIndex, fileOffset: span.fileOffset,
                address: base + position, remainingBytes: span.length, fixedBufferIndex: fixedBufferIndex)
            if ioKind == .read {
                files[span.fileIndex].queuedReads.append(operation)
            } else {
                files[span.fileIndex].queuedWrites.append(operation)
            }
        }
        guard request != nil else { return }
        // Pumped only once all are queued, so an early failure cannot end the request before the rest.
        layout.forEachSpan(offset: offset, length: length) { span in
            if !span.isPadding { pump(span.fileIndex) }
        }
    }

    /// Registers a request of `operationCount` operations. A request without I/O ends at once; nil then,
    /// and when the request table is full (the request fails as overloaded).
    private func beginRequest(_ kind: StorageRequest, operationCount: Int) -> OperationSlot? {
        if operationCount == 0 {
            readyEvents.append(Self.successEvent(for: kind))
            return nil
        }
        guard let slot = requests.acquire(Request(kind: kind, remainingOperations: operationCount)) else {
            reject(kind, kind.operation, reason: .overloaded)
            return nil
        }
        return slot
    }

    private func reject(
        _ kind: StorageRequest, _ operation: StorageError.Operation, reason: StorageError.Reason
    ) {
        readyEvents.append(.failed(kind, StorageError(operation, path: kind.subject, reason: reason)))
    }

    /// One operation of a request ended (or was dropped); the request ends with its last one.
    private func operationEnded(_ slot: OperationSlot, error: StorageError?) {
        guard var request = requests.context(for: slot) else { return }
        if request.error == nil, let error { request.error = error }
        request.remainingOperations -= 1
        guard request.remainingOperations == 0 else { return requests.update(slot, to: request) }
        requests.release(slot)
        if let error = request.error {
            readyEvents.append(.failed(request.kind, error))
        } else {
            readyEvents.append(Self.successEvent(for: request.kind))
        }
    }

    private static func successEvent(for kind: StorageRequest) -> StorageEvent {
        switch kind {
        case .writePiece(let piece, let slot): .pieceWritten(piece, slot)
        case .readPiece(let piece, let slot): .pieceRead(piece, slot)
        case .readBlock(let token, let block): .blockRead(token: token, block)
        case .flush: .flushed
        }
    }

    /// Starts what a file's queue allows: opens the file if needed, then issues reads, and writes up to
    /// the per-file limit.
    private func pump(_ index: Int) {
        guard files[index].hasQueuedWork else { return }
        if files[index].fd >= 0 && files[index].openedReadOnly && !files[index].queuedWrites.isEmpty {
            // Opened for reads only (a read-only mount): writes open it again, and fail with the
            // reason why they cannot.
            guard files[index].operationsInFlight == 0 else { return }
            closeFile(index)
        }
        if files[index].fd < 0 {
            switch openFile(index, create: !files[index].queuedWrites.isEmpty) {
            case .opened:
                break
            case .noDescriptorFree:
                return markStalled(index)
            case .failed(let error):
                return failQueued(index, error: error)
            }
        }
        useTick += 1
        files[index].lastUseTick = useTick
        while let operation = files[index].queuedReads.first {
            guard issue(operation) else { return markStalled(index) }
            files[index].queuedReads.removeFirst()
        }
        let direct = files[index].directFD >= 0 && !files[index].directRefused
        let writeCap = direct ? directWritesInFlightPerFile : writesInFlightPerFile
        while files[index].writesInFlight < writeCap, !files[index].isPreallocating,
            let operation = files[index].queuedWrites.first
        {
            guard issue(operation) else { return markStalled(index) }
            files[index].queuedWrites.removeFirst()
        }
    }

    /// Puts a queued operation on the ring; false when no operation slot is free. An operation whose
    /// request already failed is dropped instead: the request's buffer is coming back anyway.
    private func issue(_ operation: IOOperation) -> Bool {
        if requests.context(for: operation.request)?.error != nil {
            operationEnded(operation.request, error: nil)
            return true
        }
        var operation = operation
        let ringOperation = ringOperation(for: &operation)
        guard let slot = operations.acquire(operation) else { return false }
        do {
            try ring.enqueue(ringOperation, for: slot)
        } catch {
            operations.release(slot)
            operationEnded(operation.request, error: self.error(for: operation, reason: .system(error.errno)))
            return true
        }
        files[operation.fileIndex].operationsInFlight += 1
        if operation.kind != .read { files[operation.fileIndex].writesInFlight += 1 }
        if operation.kind == .preallocate { files[operation.fileIndex].isPreallocating = true }
        return true
    }

    /// The ring operation for `operation`, choosing the descriptor (and recording the choice in it).
    private func ringOperation(for operation: inout IOOperation) -> Operation {
        operation.isDirect = operation.kind == .write && canWriteDirectly(operation)
        let fd = operation.isDirect ? files[operation.fileIndex].directFD : files[operation.fileIndex].fd
        let offset = UInt64(operation.fileOffset)
        switch operation.kind {
        case .read:
            let buffer = UnsafeMutableRawBufferPointer(
                start: operation.address, count: operation.remainingBytes)
            if let index = operation.fixedBufferIndex {
                return .readFixed(fd: fd, into: buffer, offset: offset, bufferIndex: index)
            }
            return .read(fd: fd, into: buffer, offset: offset)
        case .write:
            let bytes = UnsafeRawBufferPointer(start: operation.address, count: operation.remainingBytes)
            if let index = operation.fixedBufferIndex {
                return .writeFixed(fd: fd, bytes: bytes, offset: offset, bufferIndex: index)
            }
            return .write(fd: fd, bytes: bytes, offset: offset)
        case .sync:
            return .fsync(fd: fd, dataOnly: true)
        case .preallocate:
            return .fallocate(fd: fd, mode: 0, offset: 0, length: UInt64(operation.remainingBytes))
        }
    }

    private func canWriteDirectly(_ operation: IOOperation) -> Bool {
        let alignment = OpenFlags.directAlignmentBytes
        guard files[operation.fileIndex].directFD >= 0, !files[operation.fileIndex].directRefused,
            let address = operation.address
        else { return false }
        return Int(bitPattern: address) % alignment == 0 && operation.fileOffset % Int64(alignment) == 0
            && operation.remainingBytes % alignment == 0
    }

    /// Fails every queued operation of a file that cannot be opened.
    private func failQueued(_ index: Int, error: StorageError) {
        let reads = files[index].queuedReads
        files[index].queuedReads.removeAll(keepingCapacity: true)
        for operation in reads { operationEnded(operation.request, error: error) }
        failQueuedWrites(index, error: error)
    }

    private func failQueuedWrites(_ index: Int, error: StorageError) {
        let writes = files[index].queuedWrites
        files[index].queuedWrites.removeAll(keepingCapacity: true)
        for operation in writes {
            if operation.kind == .sync { markDirty(index) }
            operationEnded(operation.request, error: error)
        }
    }

    private func markStalled(_ index: Int) {
        guard !files[index].isStalled else { return }
        files[index].isStalled = true
        stalledFileIndices.append(index)
    }

    /// Gives files that waited for a descriptor or an operation slot another chance: something just
    /// completed, so one may be free.
    private func retryStalledFiles() {
        guard !stalledFileIndices.isEmpty else { return }
        let waiting = stalledFileIndices
        stalledFileIndices.removeAll(keepingCapacity: true)
        for index in waiting {
            files[index].isStalled = false
            pump(index)
        }
    }

    private func markDirty(_ index: Int) {
        guard !files[index].isDirty else { return }
        files[index].isDirty = true
        dirtyFileIndices.append(index)
    }

    // MARK: Files

    private func openFile(_ index: Int, create: Bool) -> OpenOutcome {
        if openFileIndices.count >= options.maxOpenFiles {
            guard let victim = leastRecentlyUsedIdleFile() else { return .noDescriptorFree }
            closeFile(victim)
        }
        let entry = layout.files[index]
        let expected = files[index].closedUnsynced
        var flags = options.readOnly ? O_RDONLY : O_RDWR
        // A file closed with unsynced writes is never created again: it must still be there.
        if create && !options.readOnly && expected == nil { flags |= O_CREAT }
        var fd: Int32 = -1
        var readOnly = options.readOnly
        do {
            fd = try directory().openFile(entry.path, flags: flags)
        } catch {
            // Seeding from a read-only mount or files we may not write: reads need no more.
            if !create && !options.readOnly
                && (error.errno == Errno(rawValue: EROFS) || error.errno == .permissionDenied),
                let readable = try? directory().openFile(entry.path, flags: O_RDONLY)
            {
                fd = readable
                readOnly = true
            } else {
                guard expected != nil, error.errno == .noSuchFile else { return .failed(error) }
                return .failed(replaced(index, now: .missing))
            }
        }
        files[index].openedReadOnly = readOnly
        var info = stat()
        let identity = fstat(fd, &info) == 0 ? FileIdentity(info) : nil
        if let expected, identity != expected {
            Glibc.close(fd)
            return .failed(replaced(index, now: .file(expected)))
        }
        files[index].closedUnsynced = nil
        if options.preallocate && fileWanted[index] && !files[index].isPreallocated && entry.length > 0,
            let first = files[index].queuedWrites.first, var request = requests.context(for: first.request)
        {
            // Charged to the first queued request: it is the one that needs the space first.
            request.remainingOperations += 1
            requests.update(first.request, to: request)
            files[index].queuedWrites.insert(
                IOOperation(
                    request: first.request, kind: .preallocate, fileIndex: index, fileOffset: 0, address: nil,
                    remainingBytes: Int(entry.length), fixedBufferIndex: nil), at: 0)
            files[index].isPreallocated = true
        }
        files[index].fd = fd
        files[index].identity = identity
        if options.directWrites && !readOnly && !files[index].directRefused {
            // Any failure (EINVAL: no O_DIRECT on this file system) leaves the page cache for all writes.
            files[index].directFD =
                (try? directory().openFile(entry.path, flags: O_RDWR | OpenFlags.direct)) ?? -1
        }
        openFileIndices.append(index)
        return .opened
    }

    /// The download folder, opened again if ``closeIdleFiles()`` closed it.
    private func directory() throws(StorageError) -> BeneathDirectory {
        if let openDirectory { return openDirectory }
        let opened = try BeneathDirectory.open(path: directoryPath)
        openDirectory = opened
        return opened
    }

    /// Closes every file with nothing in flight or queued, and the download folder when no file stays
    /// open, so that a torrent at rest holds no descriptor (thousands of them share the process's
    /// limit). Whatever is used next opens again.
    public func closeIdleFiles() {
        for index in openFileIndices.reversed()
        where files[index].operationsInFlight == 0 && !files[index].hasQueuedWork {
            closeFile(index)
        }
        if openFileIndices.isEmpty, let openDirectory {
            Glibc.close(openDirectory.fd)
            self.openDirectory = nil
        }
    }

    /// Only once nothing is queued or in flight on it (its file closes): a write queued on the ring
    /// but not yet submitted names the number, which the next open could take.
    private func closeDirectDescriptor(_ index: Int) {
        guard files[index].directFD >= 0 else { return }
        Glibc.close(files[index].directFD)
        files[index].directFD = -1
    }

    /// The open file used longest ago with nothing in flight, preferring files with nothing queued.
    private func leastRecentlyUsedIdleFile() -> Int? {
        var best: Int?
        var bestHasWork = true
        for index in openFileIndices where files[index].operationsInFlight == 0 {
            let hasWork = files[index].hasQueuedWork
            guard let current = best else {
                (best, bestHasWork) = (index, hasWork)
                continue
            }
            if (bestHasWork && !hasWork)
                || (bestHasWork == hasWork && files[index].lastUseTick < files[current].lastUseTick)
            {
                (best, bestHasWork) = (index, hasWork)
            }
        }
        return best
    }

    private func closeFile(_ index: Int) {
        precondition(files[index].operationsInFlight == 0, "closing a file with I/O in flight")
        // A close of a regular file does not flush, so it cannot block on the disk.
        Glibc.close(files[index].fd)
        files[index].fd = -1
        let unsynced = files[index].isDirty || files[index].queuedWrites.contains { $0.kind == .sync }
        files[index].closedUnsynced = unsynced ? files[index].identity : nil
        files[index].identity = nil
        closeDirectDescriptor(index)
        pageCache.retire(index)
        if let position = openFileIndices.firstIndex(of: index) { openFileIndices.remove(at: position) }
        if files[index].hasQueuedWork { markStalled(index) }
    }

    /// Puts events of requests that ended outside `handle` on their way: a nop on the ring makes the
    /// reactor call `handle` soon, so every event takes the same path.
    private func scheduleDeliveryIfNeeded() {
        guard !readyEvents.isEmpty, !wakeScheduled else { return }
        // If even a nop cannot be queued the ring is failing; the events wait for the next completion.
        if (try? ring.enqueue(.nop, for: wakeSlot)) != nil { wakeScheduled = true }
    }

    private func error(for operation: IOOperation, reason: StorageError.Reason) -> StorageError {
        let kind: StorageError.Operation =
            switch operation.kind {
            case .read: .read
            case .write: .write
            case .sync: .sync
            case .preallocate: .preallocate
            }
        return StorageError(
            kind, path: BeneathDirectory.display(layout.files[operation.fileIndex].path), reason: reason)
    }
}
