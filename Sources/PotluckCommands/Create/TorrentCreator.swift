import Buffers
import CLinux
import Glibc
import Hashing
import Metainfo
import URing

/// Hashes a file or folder into a torrent on the hashing pool and hands the digests to `TorrentBuilder`.
///
/// Every piece is one hash job (SHA-1, a merkle root, or both for hybrids). A piece that lies inside one
/// file whose page cache holds it in huge pages is hashed where it lies, through a read-only mapping
/// (`FileWindows` says when that beats copying). Every other piece, and every piece that spans files
/// or carries padding zeros, is assembled in a pool buffer by reads through the ring. A fixed number
/// of pieces in flight bounds memory while hashing overlaps the I/O.
struct TorrentCreator {
    /// One input file on disk and its path inside the torrent.
    struct InputFile {
        let diskPath: String
        let torrentPath: [String]
        let length: Int64
    }

    struct Progress {
        let hashedBytes: Int64
        /// The part of `hashedBytes` hashed in place through a mapping rather than read into a buffer.
        let mappedBytes: Int64
        let totalBytes: Int64
    }

    enum Failure: Error, CustomStringConvertible {
        case nothingToShare(String)
        case unreadable(String, Errno)
        case changedWhileReading(String)
        case io(IOError)
        case invalid(MetainfoError)
        case threads(HashPoolError)

        var description: String {
            switch self {
            case .threads(let error): "\(error)"
            case .nothingToShare(let path): "\(path) holds no files to share"
            case .unreadable(let path, let errno): "cannot read \(path): \(errno)"
            case .changedWhileReading(let path): "\(path) changed size while it was being hashed"
            case .io(let error): "\(error)"
            case .invalid(let error): "\(error)"
            }
        }
    }

    /// Lists `path` (a file or a folder, walked in byte order of names) as torrent input.
    /// Symbolic links and special files are skipped and reported through `skipped`.
    static func inputs(
        at path: String, skipped: (String) -> Void
    ) throws(Failure) -> (name: String, files: [InputFile]) {
        var status = stat()
        guard lstat(path, &status) == 0 else { throw .unreadable(path, Errno(rawValue: errno)) }
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let name = trimmed.split(separator: "/").last.map(String.init) ?? trimmed
        if status.st_mode & S_IFMT == S_IFREG {
            return (name, [InputFile(diskPath: path, torrentPath: [name], length: Int64(status.st_size))])
        }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw .nothingToShare(path) }
        var files: [InputFile] = []
        try walk(directory: trimmed, relative: [], into: &files, skipped: skipped)
        guard !files.isEmpty else { throw .nothingToShare(path) }
        return (name, files)
    }

    private static func walk(
        directory: String, relative: [String], into files: inout [InputFile], skipped: (String) -> Void
    ) throws(Failure) {
        guard let handle = opendir(directory) else { throw .unreadable(directory, Errno(rawValue: errno)) }
        var names: [String] = []
        while let entry = readdir(handle) {
            // Read the name in place, up to its NUL: the record is only as long as its name, so copying
            // the declared 256-byte d_name reads past the end of the last entry in readdir's buffer.
            let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            let name = String(
                cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(handle)
        // Byte order, the order BEP 52's file tree uses, so v1 and v2 list files alike.
        names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for name in names {
            let path = directory + "/" + name
            var status = stat()
            guard lstat(path, &status) == 0 else { throw .unreadable(path, Errno(rawValue: errno)) }
            switch status.st_mode & S_IFMT {
            case S_IFREG:
                files.append(
                    InputFile(diskPath: path, torrentPath: relative + [name], length: Int64(status.st_size)))
            case S_IFDIR:
                try walk(directory: path, relative: relative + [name], into: &files, skipped: skipped)
            default:
                skipped(path)
            }
        }
    }

    /// A read that fills part of a piece buffer.
    private struct Read {
        let file: Int
        var fileOffset: Int64
        var bufferOffset: Int
        var length: Int
    }

    /// The work for one piece: reads, zero ranges, the hash job, and where its digest goes.
    private struct PieceJob {
        var reads: [Read] = []
        var zeroRanges: [Range<Int>] = []
        var dataLength = 0
        var kind: HashJobKind = .sha1
        var v1Index: Int?
        /// The input file and its piece number, for v2 digests.
        var v2Piece: (file: Int, piece: Int)?
        var v2IsWholeFile = false

        /// The one read of a piece that lies inside one file with no padding: it can be hashed mapped.
        var mappableRead: Read? { reads.count == 1 && zeroRanges.isEmpty ? reads[0] : nil }
    }

    /// Read-only mappings of the input files, a window at a time, so page tables stay small on huge
    /// files. A piece belongs to the window its first byte falls in; each mapping runs a piece past its
    /// window so that piece ends inside it.
    ///
    /// A window is hashed through its mapping only when that is cheaper than copying, which it is when
    /// it is already in the page cache in 2 MiB folios the kernel maps with one page-table entry each
    /// (measured on a warm 2 GiB file: 7 % faster than reads; the page cache holds files that way
    /// when they were written or read in large chunks, on Linux 6.16 and later for ext4). Otherwise
    /// the ring reads it: a window that is not in the cache would stall a hasher on page faults per
    /// piece (up to 1.7 times as long, measured), and one in 4 KiB pages costs more to map (about 5 %)
    /// than to copy. Each window is judged once, by its first page, before the ring's reads change it.
    private struct FileWindows {
        private struct Key: Hashable {
            let file: Int
            let window: Int64
        }

        private enum Window {
            case mapped(UnsafeMutableRawBufferPointer, piecesInFlight: Int)
            case readThroughRing
        }

        let windowBytes: Int64
        let pieceLength: Int
        private var windows: [Key: Window] = [:]
        /// /proc/self/pagemap, opened on first use.
        private var pagemap = Self.unopened
        /// The window of the latest piece started; pieces start in file order, so the windows before it
        /// are unmapped as soon as their pieces are hashed.
        private var current: Key?

        init(windowBytes: Int64, pieceLength: Int) {
            self.windowBytes = max(windowBytes, Int64(pieceLength))
            self.pieceLength = pieceLength
        }

        private func key(of read: Read) -> Key { Key(file: read.file, window: read.fileOffset / windowBytes) }

        /// The bytes `read` would fill, mapped; nil when they are to be read through the ring. A piece
        /// given bytes must be reported `finished` once hashed.
        mutating func bytes(of read: Read, fd: Int32, fileLength: Int64) -> UnsafeRawBufferPointer? {
            let key = key(of: read)
            if key != current {
                if let previous = current { unmapIfIdle(previous) }
                current = key
            }
            if windows[key] == nil {
                let start = key.window * windowBytes
                let length = Int(min(fileLength, start + windowBytes + Int64(pieceLength)) - start)
                windows[key] = .readThroughRing
                if Self.isCached(fd: fd, offset: start, length: length) {
                    let base = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(start))
                    if let base, base != UnsafeMutableRawPointer(bitPattern: -1) {
                        if isHugeMapped(base) {
                            windows[key] = .mapped(
                                UnsafeMutableRawBufferPointer(start: base, count: length), piecesInFlight: 0)
                        } else {
                            munmap(base, length)
                        }
                    }
                }
            }
            guard case .mapped(let mapping, let inFlight) = windows[key] else { return nil }
            windows[key] = .mapped(mapping, piecesInFlight: inFlight + 1)
            let offset = Int(read.fileOffset - key.window * windowBytes)
            return UnsafeRawBufferPointer(rebasing: mapping[offset..<offset + read.length])
        }

        /// Call when the piece of a mapped `read` is hashed.
        mutating func finished(_ read: Read) {
            let key = key(of: read)
            guard case .mapped(let mapping, let inFlight) = windows[key] else {
                preconditionFailure("only mapped pieces finish here")
            }
            windows[key] = .mapped(mapping, piecesInFlight: inFlight - 1)
            if key != current { unmapIfIdle(key) }
        }

        private mutating func unmapIfIdle(_ key: Key) {
            switch windows[key] {
            case .mapped(let mapping, piecesInFlight: 0):
                munmap(mapping.baseAddress, mapping.count)
                windows[key] = nil
            case .readThroughRing:
                windows[key] = nil
            case .mapped, nil:
                break
            }
        }

        mutating func unmapAll() {
            for case .mapped(let mapping, _) in windows.values { munmap(mapping.baseAddress, mapping.count) }
            windows.removeAll()
            if pagemap >= 0 { close(pagemap) }
            pagemap = -1
        }

        /// Faults in the page at `address` and asks the page table (PAGEMAP_SCAN, Linux 6.7) whether a
        /// huge entry maps it; false where the kernel cannot tell.
        private mutating func isHugeMapped(_ address: UnsafeMutableRawPointer) -> Bool {
            if pagemap == Self.unopened { pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) }
            guard pagemap >= 0 else { return false }
            _ = madvise(address, Int(sysconf(Int32(_SC_PAGESIZE))), Self.populateRead)
            return potluck_is_huge_mapped(pagemap, address) == 1
        }

        private static let unopened: Int32 = -2
        /// MADV_POPULATE_READ (Linux 5.14), which Glibc's headers here lack.
        private static let populateRead: Int32 = 22

        /// Whether every page of the range is in the page cache. cachestat counts a large folio at
        /// once; mincore, which looks up each 4 KiB page, cost 4 % of the time of a warm 2 GiB file.
        /// Before Linux 6.5 there is no cachestat, and files are read through the ring.
        private static func isCached(fd: Int32, offset: Int64, length: Int) -> Bool {
            let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))
            let pages = (offset + Int64(length) - 1) / pageSize - offset / pageSize + 1
            return potluck_cached_pages(fd, UInt64(offset), UInt64(length)) == pages
        }
    }

    let name: String
    let files: [InputFile]
    var builder: TorrentBuilder

    /// Hashes the input and returns the builder with every digest filled in. `memoryBudgetBytes`
    /// bounds the piece buffers and, separately, the mapped windows (page cache, not extra memory, but
    /// it shows in the resident set).
    func run(
        threads: Int = HashPool.coreCount, memoryBudgetBytes: Int = 64 << 20, progress: (Progress) -> Void
    ) throws(Failure) -> TorrentBuilder {
        let pieceLength = builder.pieceLength
        let jobs: [PieceJob]
        let payload: [TorrentBuilder.File]
        do {
            payload = try builder.payloadFiles()
        } catch {
            throw .invalid(error)
        }
        jobs = plan(payload: payload, pieceLength: pieceLength)
        let totalBytes = files.reduce(Int64(0)) { $0 + $1.length }

        let ring: Ring
        do {
            ring = try Ring()
        } catch {
            throw .io(IOError(.enter, errno: error.errno))
        }
        // Two pieces per hasher keep every core busy while the next ones are read; more only adds page
        // faults (measured: 64 buffers of 1 MiB cost 10× the faults of mktorrent and ~10 % more CPU).
        // Where the hashers take sixteen v1 pieces at once (`SHA1Lanes`, three times OpenSSL's speed),
        // sixteen per hasher: the faults cost far less than the hashing saves. Pieces in flight stay
        // within half the budget, so that they span two mapped windows at most.
        let piecesPerHasher = SHA1Lanes.isAvailable && builder.format == .v1 ? SHA1Lanes.laneCount : 2
        let slotCount = max(4, min(piecesPerHasher * threads + 2, memoryBudgetBytes / 2 / pieceLength))
        let buffers = BufferPool(slotSizeBytes: pieceLength, slotCount: slotCount)
        // Two windows are mapped at most: the current one and the last pieces of the one before.
        var windows = FileWindows(windowBytes: Int64(memoryBudgetBytes / 2), pieceLength: pieceLength)
        // A file that shrinks under its mapping raises SIGBUS when the lost pages are read.
        let previousHandler = signal(SIGBUS) { _ in
            let message: StaticString =
                "potluck: an input file shrank while it was being hashed; no torrent was written\n"
            _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
            _exit(1)
        }
        defer { signal(SIGBUS, previousHandler) }
        let waker = ring.waker
        let hashers: HashPool
        do {
            hashers = try HashPool(threadCount: threads) { waker.wake() }
        } catch {
            throw .threads(error)
        }
        // When an error ends the run, workers may still be hashing mapped pieces: stop them first.
        defer {
            hashers.shutdown()
            windows.unmapAll()
        }
        var descriptors = [Int32](repeating: -1, count: files.count)
        defer { for fd in descriptors where fd >= 0 { close(fd) } }

        var v1Digests = [SHA1Digest?](repeating: nil, count: builder.format == .v2 ? 0 : jobs.count)
        var v2Layers: [[SHA256Digest?]] = files.map { file in
            Array(repeating: nil, count: Int((file.length + Int64(pieceLength) - 1) / Int64(pieceLength)))
        }
        var v2Roots = [SHA256Digest?](repeating: nil, count: files.count)

        // Reads in flight, and those waiting for room: a piece over thousands of small files has a read
        // per file, and every file being read is open.
        var reads = OperationTable<(job: Int, read: Read, slot: BufferSlot)>(capacity: 64)
        var waitingReads: [(job: Int, read: Read, slot: BufferSlot)] = []
        var waitingHead = 0
        // Per in-flight piece, its reads not yet complete.
        var readsLeft: [Int: Int] = [:]
        // Per file, its reads and mapped pieces not yet started or complete: a file is closed after its last.
        var usesLeft = [Int](repeating: 0, count: files.count)
        for job in jobs { for read in job.reads { usesLeft[read.file] += 1 } }
        var nextJob = 0
        var inFlight = 0
        var finishedJobs = 0
        var hashedBytes: Int64 = 0
        var mappedBytes: Int64 = 0

        func open(_ file: Int) throws(Failure) -> Int32 {
            if descriptors[file] >= 0 { return descriptors[file] }
            let fd = Glibc.open(files[file].diskPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .unreadable(files[file].diskPath, Errno(rawValue: errno)) }
            descriptors[file] = fd
            return fd
        }

        func used(_ file: Int) {
            usesLeft[file] -= 1
            if usesLeft[file] == 0 && descriptors[file] >= 0 {
                close(descriptors[file])
                descriptors[file] = -1
            }
        }

        /// Starts `read`; false when the table is full.
        func start(_ read: Read, job: Int, slot: BufferSlot) throws(Failure) -> Bool {
            guard let operationSlot = reads.acquire((job, read, slot)) else { return false }
            let memory = buffers.bytes(of: slot)
            let target = UnsafeMutableRawBufferPointer(
                rebasing: memory[read.bufferOffset..<read.bufferOffset + read.length])
            let fd = try open(read.file)
            do {
                try ring.enqueue(
                    .read(fd: fd, into: target, offset: UInt64(read.fileOffset)), for: operationSlot)
            } catch {
                throw .io(error)
            }
            return true
        }

        func startWaitingReads() throws(Failure) {
            while waitingHead < waitingReads.count {
                let (job, read, slot) = waitingReads[waitingHead]
                guard try start(read, job: job, slot: slot) else { return }
                waitingHead += 1
            }
            waitingReads.removeAll(keepingCapacity: true)
            waitingHead = 0
        }

        func record(_ root: SHA256Digest, for job: PieceJob) {
            guard let (file, piece) = job.v2Piece else { return }
            if job.v2IsWholeFile { v2Roots[file] = root } else { v2Layers[file][piece] = root }
        }

        func submitHash(_ jobIndex: Int, slot: BufferSlot) {
            let job = jobs[jobIndex]
            hashers.submit(slot, length: job.dataLength, in: buffers, kind: job.kind, token: UInt64(jobIndex))
        }

        while finishedJobs < jobs.count {
            // Keep `slotCount` pieces in flight; mapped ones need no buffer.
            while nextJob < jobs.count && inFlight < slotCount {
                let job = jobs[nextJob]
                if let read = job.mappableRead,
                    let bytes = windows.bytes(
                        of: read, fd: try open(read.file), fileLength: files[read.file].length)
                {
                    hashers.submit(bytes, kind: job.kind, token: UInt64(nextJob))
                    used(read.file)
                    nextJob += 1
                    inFlight += 1
                    continue
                }
                // Buffers only go to pieces in flight, so one is free.
                guard let slot = buffers.lease() else { break }
                let memory = buffers.bytes(of: slot)
                for range in job.zeroRanges {
                    UnsafeMutableRawBufferPointer(rebasing: memory[range]).initializeMemory(
                        as: UInt8.self, repeating: 0)
                }
                if job.reads.isEmpty {
                    submitHash(nextJob, slot: slot)
                } else {
                    readsLeft[nextJob] = job.reads.count
                    waitingReads += job.reads.map { (nextJob, $0, slot) }
                }
                nextJob += 1
                inFlight += 1
            }
            try startWaitingReads()
            do {
                try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(200))
            } catch {
                throw .io(error)
            }
            var failure: Failure?
            ring.drain { completion in
                guard failure == nil, let (jobIndex, read, slot) = reads.context(for: completion.slot) else {
                    return
                }
                reads.release(completion.slot)
                let count: Int
                do throws(IOError) {
                    count = try completion.value()
                } catch {
                    failure = .io(error)
                    return
                }
                guard count > 0 else {
                    failure = .changedWhileReading(files[read.file].diskPath)
                    return
                }
                if count < read.length {
                    // A short read: ask for the rest.
                    var rest = read
                    rest.fileOffset += Int64(count)
                    rest.bufferOffset += count
                    rest.length -= count
                    waitingReads.append((jobIndex, rest, slot))
                    return
                }
                used(read.file)
                readsLeft[jobIndex]! -= 1
                if readsLeft[jobIndex] == 0 {
                    readsLeft[jobIndex] = nil
                    submitHash(jobIndex, slot: slot)
                }
            }
            if let failure { throw failure }
            hashers.drain(into: buffers) { result in
                let job = jobs[Int(result.token)]
                switch result.digest {
                case .sha1(let digest):
                    v1Digests[job.v1Index!] = digest
                case .merkleRoot(let root):
                    record(root, for: job)
                case .sha1AndMerkleRoot(let digest, let root):
                    v1Digests[job.v1Index!] = digest
                    record(root, for: job)
                case .sha256:
                    preconditionFailure("creation never asks for a plain SHA-256")
                }
                hashedBytes += Int64(job.reads.reduce(0) { $0 + $1.length })
                if let slot = result.slot {
                    buffers.release(slot)
                } else {
                    windows.finished(job.reads[0])
                    mappedBytes += Int64(job.reads[0].length)
                }
                inFlight -= 1
                finishedJobs += 1
            }
            progress(Progress(hashedBytes: hashedBytes, mappedBytes: mappedBytes, totalBytes: totalBytes))
        }

        // The files only ever grow or shrink under us by accident; a changed size is a broken torrent.
        for file in files {
            var status = stat()
            if stat(file.diskPath, &status) != 0 || Int64(status.st_size) != file.length {
                throw .changedWhileReading(file.diskPath)
            }
        }

        var result = builder
        if builder.format != .v2 { result.pieceHashesV1 = v1Digests.map { $0! } }
        if builder.format != .v1 {
            for index in result.files.indices {
                guard let input = files.firstIndex(where: { $0.torrentPath == result.files[index].path }),
                    files[input].length > 0
                else { continue }
                if let root = v2Roots[input] {
                    result.files[index].piecesRoot = root
                } else {
                    let layer = v2Layers[input].map { $0! }
                    result.files[index].pieceLayer = layer
                    result.files[index].piecesRoot = MerkleTree.root(
                        pieceLayer: layer, pieceLength: pieceLength)
                }
            }
        }
        return result
    }

    /// Cuts the payload into piece jobs.
    private func plan(payload: [TorrentBuilder.File], pieceLength: Int) -> [PieceJob] {
        let inputIndex = Dictionary(
            files.enumerated().map { ($1.torrentPath, $0) }, uniquingKeysWith: { a, _ in a })
        switch builder.format {
        case .v1:
            // Pieces run across file boundaries over the concatenated payload.
            var jobs: [PieceJob] = []
            var job = PieceJob()
            for entry in payload {
                var remaining = entry.length
                var fileOffset: Int64 = 0
                while remaining > 0 {
                    let take = Int(min(remaining, Int64(pieceLength - job.dataLength)))
                    if entry.attributes.contains(.padding) {
                        job.zeroRanges.append(job.dataLength..<job.dataLength + take)
                    } else if let file = inputIndex[entry.path] {
                        job.reads.append(
                            Read(
                                file: file, fileOffset: fileOffset, bufferOffset: job.dataLength, length: take
                            ))
                    }
                    job.dataLength += take
                    fileOffset += Int64(take)
                    remaining -= Int64(take)
                    if job.dataLength == pieceLength {
                        job.v1Index = jobs.count
                        jobs.append(job)
                        job = PieceJob()
                    }
                }
            }
            if job.dataLength > 0 {
                job.v1Index = jobs.count
                jobs.append(job)
            }
            return jobs
        case .v2, .hybrid:
            // Every file starts on a piece boundary: each piece belongs to one file.
            var jobs: [PieceJob] = []
            let totalPayload = payload.reduce(Int64(0)) { $0 + $1.length }
            var payloadOffset: Int64 = 0
            for entry in payload {
                defer { payloadOffset += entry.length }
                guard !entry.attributes.contains(.padding), entry.length > 0,
                    let file = inputIndex[entry.path]
                else {
                    continue
                }
                let pieces = Int((entry.length + Int64(pieceLength) - 1) / Int64(pieceLength))
                let wholeFile = entry.length <= Int64(pieceLength)
                for piece in 0..<pieces {
                    let start = Int64(piece) * Int64(pieceLength)
                    let length = Int(min(Int64(pieceLength), entry.length - start))
                    var job = PieceJob()
                    job.reads = [Read(file: file, fileOffset: start, bufferOffset: 0, length: length)]
                    job.dataLength = length
                    job.v2Piece = (file, piece)
                    job.v2IsWholeFile = wholeFile
                    let leafCount = MerkleTree.leafCount(ofPieceIn: entry.length, pieceLength: pieceLength)
                    if builder.format == .hybrid {
                        // The v1 view sees the piece padded with zeros, except at the very end of the payload.
                        let v1Length = Int(min(Int64(pieceLength), totalPayload - payloadOffset - start))
                        job.zeroRanges = length < v1Length ? [length..<v1Length] : []
                        job.kind = .sha1AndMerkleRoot(sha1Length: v1Length, leafCount: leafCount)
                        job.v1Index = Int((payloadOffset + start) / Int64(pieceLength))
                    } else {
                        job.kind = .merkleRoot(leafCount: leafCount)
                    }
                    jobs.append(job)
                }
            }
            return jobs
        }
    }
}
