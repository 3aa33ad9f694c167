#if canImport(Glibc)
    import Glibc
#endif

/// A torrent file mapped read-only, so that a send copies a verified block straight out of the page
/// cache instead of reading it into a buffer first: one copy instead of two.
///
/// Only the kernel touches the mapped bytes (the iovecs of a `sendmsg`): a read of a page past a
/// truncated file's end would raise SIGBUS in the process, where the kernel's copy fails the send with
/// `EFAULT` instead. The mapping stays until every send that points into it has completed: each block
/// handed out pins it, and a mapping retired while pinned (its file closed) is unmapped by the last
/// `unpin()`, never under a send in flight.
public final class FileMapping {
    let base: UnsafeMutableRawPointer
    let length: Int
    /// The store's descriptor of the file, open for as long as the mapping is not retired.
    private let fd: Int32
    private var pins = 0
    private var retired = false
    private var unmapped = false
    /// Chunks of the file seen wholly in the page cache, and when (direct-mapped by chunk index).
    private var residentChunks: [(chunk: Int, checkedAt: UInt64)]
    /// The file's range that sends have touched since ``dropPages()``.
    private var touched: Range<Int>?

    /// Maps `length` bytes of `fd` from its start; nil when the file system cannot map it.
    init?(fd: Int32, length: Int) {
        guard length > 0, let mapped = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED
        else { return nil }
        base = mapped
        self.length = length
        self.fd = fd
        // One entry per chunk up to 1 GiB of file, a few KiB at most: a file that size never has two
        // chunks contend for an entry.
        residentChunks = Array(
            repeating: (-1, 0), count: min(Self.maxRememberedChunks, (length - 1) / Self.chunkBytes + 1))
        // The resident check decides what is read from the disk, and reads go through the ring: a
        // fault here must not start readahead of its own.
        _ = madvise(mapped, length, MADV_RANDOM)
    }

    deinit {
        // Nothing can point into it any more: whoever pinned it holds it alive.
        unmap()
    }

    private func unmap() {
        guard !unmapped else { return }
        unmapped = true
        munmap(base, length)
    }

    /// Whether every page of `offset..<offset+count` is in the page cache and inside the file, so that a
    /// send from it neither stalls the reactor on the disk nor fails. A chunk found so is trusted for
    /// ``residentFor`` without asking again: `mincore` costs about a microsecond a call, as much as the
    /// copy it saves for a block. A page evicted within that time costs a read from the disk on the
    /// reactor's thread, which only heavy memory pressure brings; a file truncated within it fails the
    /// send (`EFAULT`), which ends that peer's connection, and the next look sends the peer to a read,
    /// which reports the file.
    func isResident(offset: Int, count: Int, now: UInt64) -> Bool {
        let chunk = offset / Self.chunkBytes
        let withinChunk = (offset + count - 1) / Self.chunkBytes == chunk
        let slot = chunk % residentChunks.count
        if withinChunk, residentChunks[slot].chunk == chunk,
            now &- residentChunks[slot].checkedAt < Self.residentFor
        {
            return true
        }
        // Truncation can leave pages past the new end cached (one large folio held both sides).
        var info = stat()
        guard fstat(fd, &info) == 0, Int(info.st_size) >= offset + count else { return false }
        if withinChunk {
            let chunkStart = chunk * Self.chunkBytes
            let chunkEnd = min(chunkStart + Self.chunkBytes, length, Int(info.st_size))
            if pagesResident(offset: chunkStart, count: chunkEnd - chunkStart) {
                residentChunks[slot] = (chunk, now)
                return true
            }
        }
        return pagesResident(offset: offset, count: count)
    }

    private func pagesResident(offset: Int, count: Int) -> Bool {
        let pageSize = Self.pageSize
        let start = offset / pageSize * pageSize
        let pageCount = (offset + count - start + pageSize - 1) / pageSize
        guard pageCount <= Self.maxPagesChecked else { return false }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.maxPagesChecked) { vector in
            guard mincore(base + start, offset + count - start, vector.baseAddress) == 0 else { return false }
            return vector.prefix(pageCount).allSatisfy { $0 & 1 == 1 }
        }
    }

    /// Pins the mapping for a send of `offset..<offset+count` and returns those bytes.
    func pin(offset: Int, count: Int) -> UnsafeRawBufferPointer {
        pins += 1
        let range = offset..<offset + count
        touched = touched.map { min($0.lowerBound, offset)..<max($0.upperBound, range.upperBound) } ?? range
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    public func unpin() {
        precondition(pins > 0, "unpinning a mapping nobody pinned")
        pins -= 1
        if retired && pins == 0 { unmap() }
    }

    /// Takes the pages sends have touched out of the process's page tables: the kernel's copy faults
    /// them in, and without this the process's resident size would grow by every page it ever sent.
    /// The page cache keeps them; a send in flight faults its pages back in. Safe at any time.
    func dropPages() {
        guard let range = touched, !retired else { return }
        // A fault maps the pages around it too (`fault_around_bytes`: 64 KiB by default, at most the
        // 2 MiB of a page table): widen the range by that much on either side.
        let table = 2 << 20
        let start = max(0, range.lowerBound - table) / table * table
        let end = min(length, (range.upperBound + table) / table * table)
        _ = madvise(base + start, end - start, MADV_DONTNEED)
        touched = nil
    }

    /// No new blocks come from this mapping; it goes once the sends in flight from it are done.
    func retire() {
        guard !retired else { return }
        retired = true
        if pins == 0 { unmap() }
    }

    /// The unit of the resident check: 1 MiB, a common piece size.
    static let chunkBytes = 1 << 20
    static let maxRememberedChunks = 1024
    /// How long a chunk found resident is taken to stay so (nanoseconds).
    static let residentFor: UInt64 = 500_000_000
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    static let maxPagesChecked = chunkBytes / 4096 + 1
}

/// A block's bytes in the page cache, pinned in their mapping until `mapping.unpin()`.
public struct MappedBlock {
    public let bytes: UnsafeRawBufferPointer
    public let mapping: FileMapping
}
