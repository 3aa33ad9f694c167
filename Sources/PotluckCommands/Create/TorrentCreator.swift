import Buffers
import Glibc
import Hashing
import Metainfo
import URing

/// Hashes a file or folder into a torrent: reads through the ring into pool buffers, hashes each piece
/// in place on the hashing pool, and hands the digests to `TorrentBuilder`.
///
/// Every piece is one job: the reads that fill its buffer (a v1 piece may span files; padding is zeros
/// without I/O), then one hash job over that buffer (SHA-1, a merkle root, or both for hybrids). Buffers
/// bound memory; reads and hashing overlap because several pieces are in flight.
struct TorrentCreator {
    /// One input file on disk and its path inside the torrent.
    struct InputFile {
        let diskPath: String
        let torrentPath: [String]
        let length: Int64
    }

    struct Progress {
        let hashedBytes: Int64
        let totalBytes: Int64
    }

    enum Failure: Error, CustomStringConvertible {
        case nothingToShare(String)
        case unreadable(String, Errno)
        case changedWhileReading(String)
        case io(IOError)
        case invalid(MetainfoError)

        var description: String {
            switch self {
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
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
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
    }

    let name: String
    let files: [InputFile]
    var builder: TorrentBuilder

    /// Hashes the input and returns the builder with every digest filled in.
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
        let slotCount = max(4, min(2 * threads + 2, memoryBudgetBytes / pieceLength))
        let buffers = BufferPool(slotSizeBytes: pieceLength, slotCount: slotCount)
        let waker = ring.waker
        let hashers = HashPool(threadCount: threads) { waker.wake() }
        var descriptors = [Int32](repeating: -1, count: files.count)
        defer { for fd in descriptors where fd >= 0 { close(fd) } }

        var v1Digests = [SHA1Digest?](repeating: nil, count: builder.format == .v2 ? 0 : jobs.count)
        var v2Layers: [[SHA256Digest?]] = files.map { file in
            Array(repeating: nil, count: Int((file.length + Int64(pieceLength) - 1) / Int64(pieceLength)))
        }
        var v2Roots = [SHA256Digest?](repeating: nil, count: files.count)

        // Per in-flight piece: its job index, buffer and reads outstanding.
        var reads = OperationTable<(job: Int, read: Read, slot: BufferSlot)>(capacity: slotCount * 64)
        var readsLeft: [Int: Int] = [:]
        var nextJob = 0
        var finishedJobs = 0
        var hashedBytes: Int64 = 0

        func open(_ file: Int) throws(Failure) -> Int32 {
            if descriptors[file] >= 0 { return descriptors[file] }
            let fd = Glibc.open(files[file].diskPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .unreadable(files[file].diskPath, Errno(rawValue: errno)) }
            descriptors[file] = fd
            return fd
        }

        func enqueue(_ read: Read, job: Int, slot: BufferSlot) throws(Failure) {
            let memory = buffers.bytes(of: slot)
            let target = UnsafeMutableRawBufferPointer(
                rebasing: memory[read.bufferOffset..<read.bufferOffset + read.length])
            let fd = try open(read.file)
            guard let operationSlot = reads.acquire((job, read, slot)) else {
                preconditionFailure("the read table is sized for every read of the pieces in flight")
            }
            do {
                try ring.enqueue(
                    .read(fd: fd, into: target, offset: UInt64(read.fileOffset)), for: operationSlot)
            } catch {
                throw .io(error)
            }
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
            // Start as many pieces as there are free buffers.
            while nextJob < jobs.count, let slot = buffers.lease() {
                let job = jobs[nextJob]
                let memory = buffers.bytes(of: slot)
                for range in job.zeroRanges {
                    UnsafeMutableRawBufferPointer(rebasing: memory[range]).initializeMemory(
                        as: UInt8.self, repeating: 0)
                }
                if job.reads.isEmpty {
                    submitHash(nextJob, slot: slot)
                } else {
                    readsLeft[nextJob] = job.reads.count
                    for read in job.reads { try enqueue(read, job: nextJob, slot: slot) }
                }
                nextJob += 1
            }
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
                    do throws(Failure) { try enqueue(rest, job: jobIndex, slot: slot) } catch {
                        failure = error
                    }
                    return
                }
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
                buffers.release(result.slot)
                finishedJobs += 1
            }
            progress(Progress(hashedBytes: hashedBytes, totalBytes: totalBytes))
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
        let blocksPerPiece = pieceLength / MerkleTree.blockLength
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
                    let leafCount =
                        wholeFile
                        ? nextPowerOfTwo((length + MerkleTree.blockLength - 1) / MerkleTree.blockLength)
                        : blocksPerPiece
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

    private func nextPowerOfTwo(_ value: Int) -> Int {
        var power = 1
        while power < value { power *= 2 }
        return power
    }
}
