import Buffers
import CLibUring
import Glibc
import Testing

@testable import URing

@Suite struct FileIOTests {
    @Test(arguments: featureSets)
    func writeFsyncReadRoundTrip(options: RingOptions) throws {
        let harness = try Harness(options)
        let directory = TemporaryDirectory()
        let path = directory.path + "/data"
        let fd = Int32(
            try harness.perform(
                .openat(directory: AT_FDCWD, path: path, flags: O_CREAT | O_RDWR | O_CLOEXEC, mode: 0o644)
            ).value())

        // Four writes at offsets in one batch, the last one short of a block: a piece that ends a file.
        let chunk = 256 * 1024
        let data = patternBytes(count: 3 * chunk + 12345, seed: 7)
        try data.withUnsafeBytes { raw in
            let tokens = try stride(from: 0, to: data.count, by: chunk).map { offset in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[offset..<min(offset + chunk, data.count)])
                return try harness.enqueue(.write(fd: fd, bytes: bytes, offset: UInt64(offset)))
            }
            var written = 0
            for token in tokens { written += try harness.completion(of: token).value() }
            #expect(written == data.count)
        }
        #expect(try harness.perform(.fsync(fd: fd, dataOnly: true)).result == 0)
        #expect(try harness.perform(.fsync(fd: fd, dataOnly: false)).result == 0)

        let info = UnsafeMutablePointer<statx>.allocate(capacity: 1)
        defer { info.deallocate() }
        #expect(
            try harness.perform(
                .statx(directory: AT_FDCWD, path: path, flags: 0, mask: UInt32(STATX_SIZE), into: info)
            ).result == 0)
        #expect(Int(info.pointee.stx_size) == data.count)

        var readBack = [UInt8](repeating: 0, count: data.count)
        try readBack.withUnsafeMutableBytes { raw in
            let count = try harness.perform(.read(fd: fd, into: raw, offset: 0)).value()
            #expect(count == data.count)
        }
        #expect(readBack == data)

        // fallocate (mode 0) reserves blocks and extends the size.
        #expect(try harness.perform(.fallocate(fd: fd, mode: 0, offset: 0, length: 4 << 20)).result == 0)
        #expect(
            try harness.perform(
                .statx(directory: AT_FDCWD, path: path, flags: 0, mask: UInt32(STATX_SIZE), into: info)
            ).result == 0)
        #expect(info.pointee.stx_size == 4 << 20)
        #expect(try harness.perform(.close(fd: fd)).result == 0)
    }

    @Test func fixedBuffersAndRegisteredFiles() throws {
        let harness = try Harness()
        let pool = BufferPool(slotSizeBytes: 64 * 1024, slotCount: 4)
        try harness.ring.registerBuffers(pool)
        try harness.ring.registerFiles(count: 8)
        let directory = TemporaryDirectory()
        let fd = open(directory.path + "/fixed", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        try harness.ring.setRegisteredFile(fd, at: 3)
        close(fd)  // the table keeps its own reference

        let source = pool.lease()!
        let data = patternBytes(count: pool.slotSizeBytes, seed: 11)
        pool.bytes(of: source).copyBytes(from: data)
        let write = try harness.completion(
            of: harness.enqueue(
                .writeFixed(
                    fd: 3, bytes: UnsafeRawBufferPointer(pool.bytes(of: source)), offset: 4096,
                    bufferIndex: UInt16(source.index)), flags: .fixedFile))
        #expect(try write.value() == data.count)

        let target = pool.lease()!
        let read = try harness.completion(
            of: harness.enqueue(
                .readFixed(
                    fd: 3, into: pool.bytes(of: target), offset: 4096, bufferIndex: UInt16(target.index)),
                flags: .fixedFile))
        #expect(try read.value() == data.count)
        #expect(Array(pool.bytes(of: target)) == data)
        try harness.ring.unregisterBuffers()
    }
}
