import ArgumentParser
import Buffers
import CommandSupport
import Engine
import Glibc
import URing

struct BenchRing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "io_uring loopback TCP and file throughput, beside plain blocking calls.",
        discussion: """
            TCP: one thread drives both ends of a loopback connection through the ring (received into \
            provided buffers where the kernel has them), against two threads calling blocking send and \
            recv. Files: sequential 1 MiB writes (then fdatasync) and cold reads with eight in flight on \
            registered buffers, against pwrite/pread one at a time. CPU is user+system time of this process.
            """)

    @Option(name: .customLong("tcp-mib"), help: "Bytes to send over loopback TCP, in MiB.")
    var tcpMiB: Int = 1024

    @Option(name: .customLong("file-mib"), help: "Bytes to write and read back, in MiB.")
    var fileMiB: Int = 256

    @Option(help: "File operations in flight on the ring.")
    var queueDepth: Int = 2

    @Option(help: "Directory for the file benchmark's scratch file (removed afterwards).")
    var directory: String = "/var/tmp"

    func validate() throws {
        guard tcpMiB > 0 && tcpMiB <= 1 << 20, fileMiB > 0 && fileMiB <= 1 << 20 else {
            throw ValidationError("sizes must be between 1 MiB and 1 TiB")
        }
        guard queueDepth > 0 && queueDepth <= 64 else {
            throw ValidationError("--queue-depth must be in 1...64")
        }
    }

    func run() throws { try measure() }

    func measure() throws {
        let ring = try Ring.openForCommandLine()
        print("io_uring features: \(ring.features)\n")
        var table = Table(
            "benchmark", "io_uring", "blocking calls", "io_uring / blocking", "CPU s/GiB io_uring",
            "CPU s/GiB blocking")
        func add(_ name: String, _ bytes: Int, _ uring: Stopwatch.Result, _ blocking: Stopwatch.Result) {
            let gib = Double(bytes) / Double(1 << 30)
            table.add(
                name, Format.gigabytesPerSecond(Double(bytes) / uring.wallSeconds),
                Format.gigabytesPerSecond(Double(bytes) / blocking.wallSeconds),
                Format.fixed(blocking.wallSeconds / uring.wallSeconds, 2) + "×",
                Format.fixed(uring.cpuSeconds / gib, 2), Format.fixed(blocking.cpuSeconds / gib, 2))
        }
        let tcpBytes = tcpMiB << 20
        printError("loopback TCP, \(Format.bytes(tcpBytes))...")
        // A ring per section, so nothing one leaves in flight reaches the next.
        add(
            "loopback TCP", tcpBytes,
            try RingBenchmarks.tcpThroughRing(Ring.openForCommandLine(), totalBytes: tcpBytes),
            try RingBenchmarks.tcpBlocking(totalBytes: tcpBytes))

        let fileBytes = fileMiB << 20
        printError("file write and read, \(Format.bytes(fileBytes)) in \(directory)...")
        let path = directory + "/potluck-bench-\(getpid())"
        defer { unlink(path) }
        // Write-back and discard of the previous round disturb whichever runs next, so the two
        // alternate for three rounds and the median of each is reported.
        var ringRounds: [(Stopwatch.Result, Stopwatch.Result)] = []
        var plainRounds: [(Stopwatch.Result, Stopwatch.Result)] = []
        for _ in 0..<3 {
            ringRounds.append(
                try RingBenchmarks.fileThroughRing(
                    Ring.openForCommandLine(), path: path, totalBytes: fileBytes, queueDepth: queueDepth))
            plainRounds.append(try RingBenchmarks.fileBlocking(path: path, totalBytes: fileBytes))
        }
        // Three rounds each: never empty.
        let ringWrite = medianElement(ringRounds.map(\.0), by: \.wallSeconds)!
        let ringRead = medianElement(ringRounds.map(\.1), by: \.wallSeconds)!
        let plainWrite = medianElement(plainRounds.map(\.0), by: \.wallSeconds)!
        let plainRead = medianElement(plainRounds.map(\.1), by: \.wallSeconds)!
        add("file write + fdatasync", fileBytes, ringWrite, plainWrite)
        add("file read (cold)", fileBytes, ringRead, plainRead)
        print(table.rendered)
    }
}

extension Ring {
    /// A ring for a command, or a one-sentence explanation and exit status 1 when io_uring is unusable.
    static func openForCommandLine(options: RingOptions = RingOptions()) throws -> Ring {
        do {
            return try Ring(options: options)
        } catch {
            printError("potluck: \(error.description)")
            throw ExitCode(1)
        }
    }
}

extension Stopwatch {
    struct Result {
        let wallSeconds: Double
        let cpuSeconds: Double
    }

    var result: Result { Result(wallSeconds: wallSeconds, cpuSeconds: cpuSeconds) }
}

/// The measured sections of `bench ring`, kept apart from the command so tests can run them small.
enum RingBenchmarks {
    static let chunkBytes = 256 * 1024

    static func connectedPair() throws -> (client: Int32, server: Int32) {
        let listener = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        defer { close(listener) }
        let client = try Socket.makeTCP(family: AF_INET)
        let address = try Socket.localAddress(of: listener)
        try Socket.connectBlocking(client, to: address)
        return (client, try Socket.acceptBlocking(listener))
    }

    /// One thread, both ends: a send and a (multishot, provided-buffer) receive always in flight.
    static func tcpThroughRing(_ ring: Ring, totalBytes: Int) throws -> Stopwatch.Result {
        let (client, server) = try connectedPair()
        defer {
            close(client)
            close(server)
        }
        let provided =
            ring.features.contains([.providedBufferRing, .multishotReceive])
            ? try ProvidedBufferRing(ring: ring, group: 7, bufferCount: 64, bufferSizeBytes: 64 * 1024) : nil
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        let sink = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        defer {
            source.deallocate()
            sink.deallocate()
        }
        source.initializeMemory(as: UInt8.self, repeating: 0x42)
        let sendSlot = OperationSlot(index: 1, generation: 1)
        let receiveSlot = OperationSlot(index: 2, generation: 1)
        var sent = 0
        var received = 0
        var sending = false
        var receiving = false
        var pendingSend = UnsafeRawBufferPointer(source)

        let watch = Stopwatch()
        while received < totalBytes {
            if !sending && sent < totalBytes {
                if pendingSend.isEmpty { pendingSend = UnsafeRawBufferPointer(source) }
                let count = min(pendingSend.count, totalBytes - sent)
                try ring.enqueue(
                    .send(fd: client, bytes: UnsafeRawBufferPointer(rebasing: pendingSend[..<count])),
                    for: sendSlot)
                sending = true
            }
            if !receiving {
                let operation: Operation =
                    provided.map { .receiveProvided(fd: server, group: $0.group, multishot: true) }
                    ?? .receive(fd: server, into: sink)
                try ring.enqueue(operation, for: receiveSlot)
                receiving = true
            }
            try ring.submitAndWait(minimumCompletions: 1)
            try ring.drain { completion in
                if completion.slot == sendSlot {
                    let count = try completion.value()
                    sent += count
                    // A short send leaves the rest of the chunk for the next one.
                    pendingSend = UnsafeRawBufferPointer(rebasing: pendingSend[count...])
                    sending = false
                } else {
                    if !completion.hasMore { receiving = false }
                    if completion.result == -ENOBUFS { return }
                    let count = try completion.value()
                    guard count > 0 else { throw SyscallError("recv", errno: .connectionReset) }
                    received += count
                    if let provided, let id = completion.bufferID { provided.recycle(id) }
                }
            }
            provided?.publishRecycled()
        }
        let result = watch.result
        if receiving {
            // The multishot receive is still armed: cancel it and wait for its last completion.
            try ring.enqueue(
                .cancel(CompletionToken(slot: receiveSlot, kind: .receive), all: true), for: sendSlot)
            while receiving {
                try ring.submitAndWait(minimumCompletions: 1)
                ring.drain { completion in
                    if completion.slot == receiveSlot && !completion.hasMore { receiving = false }
                }
            }
        }
        return result
    }

    /// Two threads with blocking calls: the baseline any program gets without trying.
    static func tcpBlocking(totalBytes: Int) throws -> Stopwatch.Result {
        let (client, server) = try connectedPair()
        defer {
            close(client)
            close(server)
        }
        let watch = Stopwatch()
        let sender = try JoinableThread {
            let chunk = [UInt8](repeating: 0x42, count: chunkBytes)
            var sent = 0
            while sent < totalBytes {
                let n = chunk.withUnsafeBytes {
                    send(client, $0.baseAddress, min($0.count, totalBytes - sent), Int32(MSG_NOSIGNAL))
                }
                if n <= 0 { return }
                sent += n
            }
        }
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        var received = 0
        while received < totalBytes {
            let n = buffer.withUnsafeMutableBytes { recv(server, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw SyscallError("recv", errno: Errno(rawValue: errno)) }
            received += n
        }
        sender.join()
        return watch.result
    }

    /// Sequential 1 MiB writes and reads on registered buffers, `queueDepth` in flight.
    ///
    /// Two, not more: ext4 has no non-blocking buffered writes, so the kernel hands each write to an
    /// io-wq worker, and more than two to one file contend on its inode lock (measured here: eight in
    /// flight cost about three times the CPU of two, and ran slower).
    static func fileThroughRing(
        _ ring: Ring, path: String, totalBytes: Int, queueDepth: Int = 2
    ) throws -> (Stopwatch.Result, Stopwatch.Result) {
        let depth = queueDepth
        let blockBytes = 1 << 20
        let pool = BufferPool(slotSizeBytes: blockBytes, slotCount: depth)
        let fixed = ring.features.contains(.registeredBuffers)
        if fixed { try ring.registerBuffers(pool) }
        defer { if fixed { try? ring.unregisterBuffers() } }
        let slots = (0..<depth).map { _ in pool.lease()! }
        for slot in slots { pool.bytes(of: slot).initializeMemory(as: UInt8.self, repeating: 0x17) }

        let fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SyscallError("open \(path)", errno: Errno(rawValue: errno)) }
        defer { close(fd) }

        func pass(write: Bool) throws {
            var nextOffset = 0
            var done = 0
            var inFlight = 0
            var free = Array(0..<depth)
            var lengths = [Int](repeating: 0, count: depth)
            while done < totalBytes {
                while inFlight < depth && nextOffset < totalBytes, let slotNumber = free.popLast() {
                    let slot = slots[slotNumber]
                    let memory = UnsafeMutableRawBufferPointer(
                        rebasing: pool.bytes(of: slot)[..<min(blockBytes, totalBytes - nextOffset)])
                    let offset = UInt64(nextOffset)
                    let index = UInt16(slot.index)
                    let operation: Operation
                    switch (write, fixed) {
                    case (true, true):
                        operation = .writeFixed(
                            fd: fd, bytes: UnsafeRawBufferPointer(memory), offset: offset, bufferIndex: index)
                    case (true, false):
                        operation = .write(fd: fd, bytes: UnsafeRawBufferPointer(memory), offset: offset)
                    case (false, true):
                        operation = .readFixed(fd: fd, into: memory, offset: offset, bufferIndex: index)
                    case (false, false): operation = .read(fd: fd, into: memory, offset: offset)
                    }
                    try ring.enqueue(operation, for: OperationSlot(index: UInt32(slotNumber), generation: 1))
                    lengths[slotNumber] = memory.count
                    nextOffset += memory.count
                    inFlight += 1
                }
                try ring.submitAndWait(minimumCompletions: 1)
                try ring.drain { completion in
                    let count = try completion.value()
                    let slotNumber = Int(completion.slot.index)
                    // Whole-block I/O on a local file is short only when the disk is full.
                    guard count == lengths[slotNumber] else {
                        throw SyscallError(write ? "write" : "read", errno: .noSpace)
                    }
                    done += count
                    inFlight -= 1
                    free.append(slotNumber)
                }
            }
        }

        let writeWatch = Stopwatch()
        try pass(write: true)
        guard fdatasync(fd) == 0 else { throw SyscallError("fdatasync", errno: Errno(rawValue: errno)) }
        let written = writeWatch.result
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        let readWatch = Stopwatch()
        try pass(write: false)
        return (written, readWatch.result)
    }

    /// pwrite/pread, one 1 MiB block at a time.
    static func fileBlocking(path: String, totalBytes: Int) throws -> (Stopwatch.Result, Stopwatch.Result) {
        let blockBytes = 1 << 20
        var block = [UInt8](repeating: 0x17, count: blockBytes)
        let fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SyscallError("open \(path)", errno: Errno(rawValue: errno)) }
        defer { close(fd) }
        let writeWatch = Stopwatch()
        var offset = 0
        while offset < totalBytes {
            let n = block.withUnsafeBytes {
                pwrite(fd, $0.baseAddress, min(blockBytes, totalBytes - offset), off_t(offset))
            }
            guard n > 0 else { throw SyscallError("pwrite", errno: Errno(rawValue: errno)) }
            offset += n
        }
        guard fdatasync(fd) == 0 else { throw SyscallError("fdatasync", errno: Errno(rawValue: errno)) }
        let written = writeWatch.result
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        let readWatch = Stopwatch()
        offset = 0
        while offset < totalBytes {
            let n = block.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress, min(blockBytes, totalBytes - offset), off_t(offset))
            }
            guard n > 0 else { throw SyscallError("pread", errno: Errno(rawValue: errno)) }
            offset += n
        }
        return (written, readWatch.result)
    }
}
