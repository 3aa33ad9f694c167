/// A store's files mapped for sends out of the page cache (see `FileMapping`): one mapping per open
/// file, made at its first use and retired when the file closes, and how much may be sent from them
/// before the pages those sends faulted in leave the process's page tables again.
struct PageCacheMappings {
    private var mappings: [FileMapping?]
    /// `mmap` failed once for the file (a file system without it): reads only.
    private var cannotMap: [Bool]
    /// Bytes handed out since the pages were last dropped.
    private var bytesSinceDrop = 0

    init(fileCount: Int) {
        mappings = Array(repeating: nil, count: fileCount)
        cannotMap = Array(repeating: false, count: fileCount)
    }

    /// The bytes `offset..<offset+count` of open file `index` (descriptor `fd`, `length` bytes long),
    /// pinned, if every page of them is cached; nil otherwise.
    mutating func block(
        ofFile index: Int, fd: Int32, length: Int64, offset: Int, count: Int, now: UInt64
    ) -> MappedBlock? {
        guard let mapping = mapping(ofFile: index, fd: fd, length: length),
            mapping.isResident(offset: offset, count: count, now: now)
        else { return nil }
        if bytesSinceDrop + count > Self.bytesBetweenDrops { dropPages() }
        bytesSinceDrop += count
        return MappedBlock(bytes: mapping.pin(offset: offset, count: count), mapping: mapping)
    }

    /// How much is sent out of the mappings before their pages leave the page tables: the process's
    /// resident size counts the pages a send faulted in, up to about this much.
    static let bytesBetweenDrops = 8 << 20

    /// Takes the pages that sends faulted in out of the process's page tables (the page cache keeps
    /// them).
    mutating func dropPages() {
        guard bytesSinceDrop > 0 else { return }
        for case let mapping? in mappings { mapping.dropPages() }
        bytesSinceDrop = 0
    }

    /// File `index` closed: no new blocks from its mapping, which goes once its sends are done.
    mutating func retire(_ index: Int) {
        mappings[index]?.retire()
        mappings[index] = nil
    }

    private mutating func mapping(ofFile index: Int, fd: Int32, length: Int64) -> FileMapping? {
        if let mapping = mappings[index] { return mapping }
        guard !cannotMap[index], length > 0, length <= Int64(Int.max) else { return nil }
        guard let mapping = FileMapping(fd: fd, length: Int(length)) else {
            cannotMap[index] = true
            return nil
        }
        mappings[index] = mapping
        return mapping
    }
}
