import Glibc
import Testing

@testable import URing

@Suite struct LoopbackTCPTests {
    /// Sends `totalBytes` from one socket to another through the ring, one send and one receive in
    /// flight at a time, re-submitting whatever a short send left over.
    @Test(arguments: featureSets)
    func largeTransferArrivesIntact(options: RingOptions) throws {
        let harness = try Harness(options)
        let ring = harness.ring
        let listener = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        defer { close(listener) }
        let address = try Socket.localAddress(of: listener)

        let accept = try harness.enqueue(
            .accept(fd: listener, multishot: ring.features.contains(.multishotAccept)))
        let client = try Socket.makeTCP(family: AF_INET)
        defer { close(client) }
        #expect(try harness.perform(.connect(fd: client, address: address)).result == 0)
        let server = Int32(try harness.completion(of: accept).value())
        defer { close(server) }
        // Small kernel buffers force short sends and many partial receives.
        Socket.setBufferSizes(client, sendBytes: 32 * 1024, receiveBytes: 32 * 1024)
        Socket.setBufferSizes(server, sendBytes: 32 * 1024, receiveBytes: 32 * 1024)

        let providedBuffers =
            ring.features.contains([.providedBufferRing, .multishotReceive])
            ? try ProvidedBufferRing(ring: ring, group: 1, bufferCount: 16, bufferSizeBytes: 16 * 1024) : nil
        var fallbackBuffer = [UInt8](repeating: 0, count: 48 * 1024)

        let data = patternBytes(count: 8 << 20 + 777, seed: 3)
        var received = [UInt8]()
        received.reserveCapacity(data.count)
        var sent = 0
        var sendToken: CompletionToken?
        var receiveToken: CompletionToken?
        var shortSends = 0
        var bufferExhaustions = 0
        var providedArrivals = 0

        try data.withUnsafeBytes { source in
            try fallbackBuffer.withUnsafeMutableBytes { fallback in
                let deadline = ContinuousClock.now + .seconds(60)
                while received.count < data.count {
                    #expect(ContinuousClock.now < deadline, "transfer stalled")
                    if ContinuousClock.now >= deadline { return }
                    if sendToken == nil && sent < data.count {
                        let bytes = UnsafeRawBufferPointer(
                            rebasing: source[sent..<min(sent + (1 << 20), data.count)])
                        sendToken = try harness.enqueue(.send(fd: client, bytes: bytes))
                    }
                    if receiveToken == nil {
                        receiveToken = try harness.enqueue(
                            providedBuffers.map {
                                .receiveProvided(fd: server, group: $0.group, multishot: true)
                            }
                                ?? .receive(fd: server, into: fallback))
                    }
                    try ring.submitAndWait(minimumCompletions: 1, timeout: .seconds(1))
                    try ring.drain { completion in
                        if completion.token == sendToken {
                            let count = try completion.value()
                            if count < min(1 << 20, data.count - sent) { shortSends += 1 }
                            sent += count
                            sendToken = nil
                        } else if completion.token == receiveToken {
                            if !completion.hasMore { receiveToken = nil }
                            if completion.result == -ENOBUFS {
                                bufferExhaustions += 1  // every buffer was full: recycle, then re-arm
                                return
                            }
                            let count = try completion.value()
                            #expect(count > 0, "unexpected end of stream")
                            if let providedBuffers, let id = completion.bufferID {
                                providedArrivals += 1
                                received.append(contentsOf: providedBuffers.bytes(id, count: count))
                                providedBuffers.recycle(id)
                            } else {
                                received.append(
                                    contentsOf: UnsafeRawBufferPointer(rebasing: fallback[..<count]))
                            }
                        }
                    }
                    providedBuffers?.publishRecycled()
                }
            }
        }
        #expect(received.count == data.count)
        #expect(received == data)
        #expect(shortSends > 0, "the test is meant to exercise short sends")
        if providedBuffers != nil {
            #expect(providedArrivals > 0, "data should arrive in provided buffers")
        }
    }

    /// A buffer ring that starts with one buffer hands the kernel more each time receives run out
    /// (doubling, up to its size), and what arrives is intact whichever buffers carried it.
    @Test func providedBuffersGrowWhenTheyRunOut() throws {
        let harness = try Harness()
        let ring = harness.ring
        try #require(ring.features.contains([.providedBufferRing, .multishotReceive]))
        let buffers = try ProvidedBufferRing(
            ring: ring, group: 1, bufferCount: 4, bufferSizeBytes: 4096, initialCount: 1)
        #expect(buffers.providedCount == 1)
        let listener = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        defer { close(listener) }
        let client = try Socket.makeTCP(family: AF_INET)
        defer { close(client) }
        let accept = try harness.enqueue(.accept(fd: listener, multishot: false))
        #expect(
            try harness.perform(.connect(fd: client, address: try Socket.localAddress(of: listener))).result
                == 0)
        let server = Int32(try harness.completion(of: accept).value())
        defer { close(server) }

        let data = patternBytes(count: 4 * 4096, seed: 9)
        var received: [UInt8] = []
        var held: [UInt16] = []
        var exhaustions = 0
        var receiveToken: CompletionToken?
        var sent = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while received.count < data.count && ContinuousClock.now < deadline {
            // One buffer's worth at a time, so each receive fills one buffer.
            if sent < data.count && sent <= received.count {
                let chunk = data[sent..<sent + 4096]
                #expect(chunk.withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, 0) } == 4096)
                sent += 4096
            }
            if receiveToken == nil {
                receiveToken = try harness.enqueue(
                    .receiveProvided(fd: server, group: buffers.group, multishot: true))
            }
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(200))
            try ring.drain { completion in
                guard completion.token == receiveToken else { return }
                if !completion.hasMore { receiveToken = nil }
                if completion.result == -ENOBUFS {
                    exhaustions += 1
                    #expect(buffers.grow())
                    return
                }
                let count = try completion.value()
                let id = try #require(completion.bufferID)
                #expect(Int(id) < buffers.providedCount)
                received.append(contentsOf: buffers.bytes(id, count: count))
                // Held, not recycled: only growing lets more data in.
                held.append(id)
            }
        }
        #expect(received == data)
        #expect(exhaustions >= 2 && buffers.providedCount == 4, "\(exhaustions), \(buffers.providedCount)")
        #expect(!buffers.grow(), "no more than its size")
        #expect(Set(held).count == held.count, "each buffer carried data once")
    }

    @Test func multishotAcceptTakesSeveralConnections() throws {
        let harness = try Harness()
        try #require(harness.ring.features.contains(.multishotAccept))
        let listener = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        defer { close(listener) }
        let address = try Socket.localAddress(of: listener)
        let accept = try harness.enqueue(.accept(fd: listener, multishot: true))
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        for _ in 0..<3 {
            let client = try Socket.makeTCP(family: AF_INET)
            clients.append(client)
            #expect(try harness.perform(.connect(fd: client, address: address)).result == 0)
        }
        for _ in 0..<3 {
            let completion = try harness.completion(of: accept)
            #expect(completion.hasMore)
            let fd = Int32(try completion.value())
            #expect(try Socket.peerAddress(of: fd).description.hasPrefix("127.0.0.1:"))
            close(fd)
        }
    }

    @Test func sendZeroCopyNotifiesWhenTheBufferIsFree() throws {
        let harness = try Harness()
        try #require(harness.ring.features.contains(.sendZeroCopy))
        var pair: [Int32] = [0, 0]
        let listener = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        defer { close(listener) }
        let accept = try harness.enqueue(.accept(fd: listener, multishot: false))
        pair[0] = try Socket.makeTCP(family: AF_INET)
        #expect(
            try harness.perform(.connect(fd: pair[0], address: Socket.localAddress(of: listener))).result == 0
        )
        pair[1] = Int32(try harness.completion(of: accept).value())
        defer { pair.forEach { close($0) } }
        let data = patternBytes(count: 64 * 1024, seed: 5)
        try data.withUnsafeBytes { raw in
            let token = try harness.enqueue(.sendZeroCopy(fd: pair[0], bytes: raw))
            let first = try harness.completion(of: token)
            #expect(try first.value() == data.count)
            #expect(first.hasMore, "a notification follows the result")
            let notification = try harness.completion(of: token)
            #expect(notification.isNotification)
        }
        var readBack = [UInt8](repeating: 0, count: data.count)
        var got = 0
        while got < data.count {
            let n = readBack.withUnsafeMutableBytes {
                recv(pair[1], $0.baseAddress! + got, data.count - got, 0)
            }
            #expect(n > 0)
            if n <= 0 { break }
            got += n
        }
        #expect(readBack == data)
    }

    /// A header and a payload from separate buffers go out as one stream, and `advance` resumes a
    /// partial send in the middle of a range.
    @Test func sendMessageGathersRangesInOrder() throws {
        let harness = try Harness()
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else {
            Issue.record("socketpair failed")
            return
        }
        defer { pair.forEach { close($0) } }
        let header = patternBytes(count: 13, seed: 1)
        let payload = patternBytes(count: 16_384, seed: 2)
        let trailer = patternBytes(count: 9, seed: 3)
        let vector = SendVector(capacity: 4)
        try header.withUnsafeBytes { h in
            try payload.withUnsafeBytes { p in
                try trailer.withUnsafeBytes { t in
                    vector.append(h)
                    vector.append(p)
                    vector.append(UnsafeRawBufferPointer(start: nil, count: 0))
                    vector.append(t)
                    #expect(vector.count == 3 && vector.remainingBytes == 13 + 16_384 + 9)
                    // As if the kernel took only part of the payload: send the rest from there.
                    vector.advance(by: 13 + 100)
                    let sent = try harness.perform(.sendMessage(fd: pair[0], vector: vector)).value()
                    #expect(sent == 16_384 - 100 + 9)
                }
            }
        }
        var readBack = [UInt8](repeating: 0, count: 16_384 - 100 + 9)
        var got = 0
        while got < readBack.count {
            let n = readBack.withUnsafeMutableBytes {
                recv(pair[1], $0.baseAddress! + got, $0.count - got, 0)
            }
            if n <= 0 { break }
            got += n
        }
        #expect(readBack == Array(payload[100...]) + trailer)
    }
}
