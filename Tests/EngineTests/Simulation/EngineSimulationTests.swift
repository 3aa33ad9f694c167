import Foundation
import Hashing
import Metainfo
import PeerWire
import Testing
import TorrentModel
import URing

@testable import Engine

/// The real engine (reactor, sessions, pipeline, piece assembly, hashing, files) on simulated sockets
/// and time (`SimulatedWorld`): torrents downloaded from many peers on slow, fast and distant links,
/// with loss, liars, stallers, garblers and peers that leave and come back; and a seed serving leechers. Each
/// run takes a second or two for five to twenty seconds of swarm time, and is reproducible from its
/// seed: a failure prints the seed, and `POTLUCK_SIMULATION_SEED=N` reruns it.
@Suite struct EngineSimulationTests {
    struct Outcome: Equatable {
        var trace: [String]
        var finishedAt: [UInt64?]
    }

    /// A download into `directory` from `peers` alone, its random choices from `seed`: no trackers, no
    /// peer exchange, and writes through the page cache (the files are real).
    static func options(_ directory: URL, peers: [SocketAddress], seed: UInt64) -> DownloadOptions {
        var options = DownloadOptions(downloadDirectory: directory.path, peers: peers)
        options.seed = seed
        options.directWrites = false
        options.useTrackers = false
        options.usePeerExchange = false
        return options
    }

    /// A torrent of 128 to 256 pieces of 64 KiB (the last one shorter) of random bytes.
    static func makeTorrent(
        named name: String, random: inout SeededRandom
    ) throws -> (Metainfo, SimulatedTorrent) {
        let pieceLength = 64 * 1024
        let size =
            pieceLength * Int.random(in: 128...256, using: &random)
            - Int.random(in: 0..<pieceLength, using: &random)
        var payload = [UInt8](repeating: 0, count: size)
        payload.withUnsafeMutableBytes { bytes in
            for offset in stride(from: 0, to: size - 7, by: 8) {
                bytes.storeBytes(of: random.next(), toByteOffset: offset, as: UInt64.self)
            }
        }
        var builder = TorrentBuilder(
            name: name, files: [TorrentBuilder.File(path: [name], length: Int64(size))],
            pieceLength: pieceLength, format: .v1)
        builder.pieceHashesV1 = stride(from: 0, to: size, by: pieceLength).map {
            SHA1.hash(payload[$0..<min($0 + pieceLength, size)])
        }
        let metainfo = try Metainfo(bytes: builder.build())
        return (
            metainfo,
            SimulatedTorrent(
                payload: payload, pieceLength: pieceLength, infoHash: metainfo.wireInfoHash.bytes)
        )
    }

    /// A swarm of `peerCount` seeders per torrent: a tenth of them liars, a tenth stallers, a
    /// twentieth garblers, a fifth leaving for a while.
    static func run(seed: UInt64, torrents torrentCount: Int, peerCount: Int) throws -> Outcome {
        var random = SeededRandom(seed: seed)
        let directory = try EngineTests.temporaryDirectory("simulation-\(seed)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let world = SimulatedWorld(seed: seed)
        let reactor = Reactor(simulator: world)
        var sessions: [DownloadSession] = []
        var torrents: [(SimulatedTorrent, String)] = []
        var liars: [[SocketAddress]] = []
        var garblers: [[SocketAddress]] = []
        var peersOf: [[SocketAddress]] = []
        var logs: [[String]] = []
        for index in 0..<torrentCount {
            let name = "t\(index).bin"
            let (metainfo, torrent) = try Self.makeTorrent(named: name, random: &random)
            torrents.append((torrent, name))
            var addresses: [SocketAddress] = []
            var lying: [SocketAddress] = []
            var garbling: [SocketAddress] = []
            for number in 0..<peerCount {
                let address = SocketAddress("10.\(index).\(number / 250).\(number % 250 + 1):6881")!
                // 16 KiB/s to 1 MiB/s, 2 to 200 ms away, losing up to 5 % of what is sent.
                let link = SimulatedLink(
                    bytesPerSecond: UInt64(16 << 10) << UInt64.random(in: 0...6, using: &random),
                    latencyNanoseconds: UInt64.random(in: 2...200, using: &random) * 1_000_000,
                    lossPerMille: UInt64.random(in: 0...50, using: &random))
                let lies = number % 10 == 3
                let peer = SimulatedPeer(
                    name: "p\(index).\(number)", address: address, link: link, torrent: torrent, lies: lies,
                    stalls: number % 10 == 7, garbles: number % 20 == 9,
                    refusesWhenAway: Bool.random(using: &random))
                world.add(peer)
                if number % 5 == 1 {
                    peer.leave(
                        at: UInt64.random(in: 500...4_000, using: &random) * 1_000_000,
                        forSeconds: UInt64.random(in: 1...20, using: &random))
                }
                addresses.append(address)
                if lies { lying.append(address) }
                if peer.garbles { garbling.append(address) }
            }
            liars.append(lying)
            garblers.append(garbling)
            peersOf.append(addresses)
            var options = Self.options(directory, peers: addresses, seed: seed &+ UInt64(index))
            options.resumeSaveIntervalSeconds = 5
            logs.append([])
            let session = DownloadSession(metainfo: metainfo, options: options) { logs[index].append($0) }
            sessions.append(session)
            reactor.host(session)
        }
        // Stopped after ten minutes of swarm time; a torrent that has not left a minute later (one that
        // cannot finish stopping) ends the run too, and fails below.
        let limit: UInt64 = 600 * 1_000_000_000
        var finishedAt: [UInt64?] = Array(repeating: nil, count: sessions.count)
        try reactor.run(
            shouldStop: { world.nanoseconds > limit },
            until: {
                for (index, session) in sessions.enumerated()
                where finishedAt[index] == nil && session.outcome != nil {
                    finishedAt[index] = world.nanoseconds
                }
                return finishedAt.allSatisfy { $0 != nil } || world.nanoseconds > limit + 60_000_000_000
            })
        for (index, session) in sessions.enumerated() {
            // Plain booleans in the expectations: a failure must not reflect a session or 16 MiB of bytes.
            guard let outcome = session.outcome else {
                Issue.record("seed \(seed): torrent \(index) never left its reactor")
                continue
            }
            let completed = (try? outcome.get()) == .completed
            #expect(completed, "seed \(seed): torrent \(index) ended with \(outcome)")
            let written = try Data(contentsOf: directory.appendingPathComponent(torrents[index].1))
            let identical = Array(written) == torrents[index].0.payload
            #expect(identical, "seed \(seed): torrent \(index) differs from what the peers hold")
            let banned = liars[index].filter { session.peerDirectory.isBanned($0) }
            let someBanned = !banned.isEmpty
            #expect(someBanned, "seed \(seed): torrent \(index): no liar banned")
            // Nobody else: a liar's bytes landing in a block an honest peer was sending had the honest
            // one proven corrupt.
            let wronged = peersOf[index].filter {
                session.peerDirectory.isBanned($0) && !liars[index].contains($0)
                    && !garblers[index].contains($0)
            }
            #expect(wronged.isEmpty, "seed \(seed): torrent \(index): honest peers banned: \(wronged)")
            world.note("torrent \(index): \(banned.count) of \(liars[index].count) liars banned")
            for garbler in garblers[index] {
                let cutOff = logs[index].contains { $0.hasPrefix("peer \(garbler): protocol:") }
                #expect(cutOff, "seed \(seed): garbler \(garbler) was never disconnected for it")
            }
        }
        return Outcome(trace: world.trace, finishedAt: finishedAt)
    }

    static var seeds: [UInt64] {
        if let text = ProcessInfo.processInfo.environment["POTLUCK_SIMULATION_SEED"], let seed = UInt64(text)
        {
            return [seed]
        }
        return [1, 2, 3]
    }

    @Test(arguments: seeds)
    func manyPeersWithLiarsAndChurn(seed: UInt64) throws {
        let started = ContinuousClock.now
        let outcome = try Self.run(seed: seed, torrents: 3, peerCount: 40)
        print(
            "simulation seed \(seed): finished at \(outcome.finishedAt) ns of simulated time in \(ContinuousClock.now - started)"
        )
    }

    /// The engine seeds a torrent from disk (checked first, through the simulated ring) to leechers on
    /// links of different speeds; its four upload slots rotate, and every leecher gets every byte.
    @Test func seedingToLeechers() throws {
        var random = SeededRandom(seed: 11)
        let directory = try EngineTests.temporaryDirectory("simulation-seeding")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "s.bin", size: 3_000_000, seed: 5, in: directory)
        let payload = try [UInt8](Data(contentsOf: directory.appendingPathComponent("s.bin")))
        let torrent = SimulatedTorrent(
            payload: payload, pieceLength: metainfo.pieceLength, infoHash: metainfo.wireInfoHash.bytes)
        let world = SimulatedWorld(seed: 11)
        var leechers: [SimulatedPeer] = []
        for number in 0..<12 {
            let link = SimulatedLink(
                bytesPerSecond: UInt64(256 << 10) << UInt64.random(in: 0...3, using: &random),
                latencyNanoseconds: UInt64.random(in: 5...80, using: &random) * 1_000_000)
            let leecher = SimulatedPeer(
                name: "l\(number)", address: SocketAddress("10.9.0.\(number + 1):6881")!, link: link,
                torrent: torrent, leeches: true)
            world.add(leecher)
            leechers.append(leecher)
        }
        var options = Self.options(directory, peers: leechers.map(\.address), seed: 11)
        options.seedWhenComplete = true
        let session = DownloadSession(metainfo: metainfo, options: options)
        let reactor = Reactor(simulator: world)
        reactor.host(session)
        let limit: UInt64 = 300 * 1_000_000_000
        try reactor.run(
            shouldStop: { leechers.allSatisfy(\.hasEverything) || world.nanoseconds > limit },
            until: { session.outcome != nil || world.nanoseconds > limit + 60_000_000_000 })
        let outcome = session.outcome.map { "\($0)" } ?? "none: it never left its reactor"
        #expect(session.outcome.map { (try? $0.get()) == .interrupted } == true, "\(outcome)")
        for leecher in leechers {
            let complete = leecher.hasEverything
            #expect(
                complete,
                "\(leecher.name) has \(leecher.receivedBlocks.count) of \(torrent.blockCount) blocks")
            #expect(leecher.corruptBlocks == 0)
        }
        #expect(session.uploadedBytes >= Int64(12 * payload.count))
        print("simulation: seeded 12 leechers in \(world.nanoseconds / 1_000_000) ms of simulated time")
    }

    /// A peer that asks for a block and cancels it thousands of times while uploads wait (a limit of
    /// 1 KiB/s) does not grow the seed's upload queue past its request limit: the sweep drops the
    /// cancelled requests and the copies of the one asked for again.
    @Test func aPeerCancellingAndAskingAgainCannotGrowTheUploadQueue() throws {
        let directory = try EngineTests.temporaryDirectory("simulation-churn")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "c.bin", size: 300_000, seed: 6, in: directory)
        let payload = try [UInt8](Data(contentsOf: directory.appendingPathComponent("c.bin")))
        let torrent = SimulatedTorrent(
            payload: payload, pieceLength: metainfo.pieceLength, infoHash: metainfo.wireInfoHash.bytes)
        let world = SimulatedWorld(seed: 12)
        let churner = SimulatedPeer(
            name: "churner", address: SocketAddress("10.9.1.1:6881")!,
            link: SimulatedLink(bytesPerSecond: 16 << 20, latencyNanoseconds: 5_000_000), torrent: torrent,
            leeches: true, churns: 3_000)
        world.add(churner)
        var options = Self.options(directory, peers: [churner.address], seed: 12)
        options.seedWhenComplete = true
        options.maximumUploadRateBytesPerSecond = 1_024
        let session = DownloadSession(metainfo: metainfo, options: options)
        let reactor = Reactor(simulator: world)
        reactor.host(session)
        var longest = 0
        var requestsQueued = false
        try reactor.run(
            shouldStop: {
                for case let link? in session.links {
                    let queued = link.uploadQueue.count - link.uploadQueueHead
                    longest = max(longest, queued)
                    requestsQueued = requestsQueued || queued > 0
                }
                return world.nanoseconds > 20_000_000_000
            },
            until: { session.outcome != nil || world.nanoseconds > 60_000_000_000 })
        #expect(requestsQueued, "the churner was never served")
        let limit = PeerConnectionOptions().maximumIncomingRequests
        #expect(longest <= 2 * limit, "\(longest) requests queued for one peer")
    }

    /// Endgame on the one block of a torrent: a liar trickles its copy slowly while an honest peer
    /// sends its own. Their bytes used to mix in the buffer and the block was credited to the honest
    /// peer, which completed it first: the piece failed on it alone, and it was banned. Now the one
    /// that began second stages its copy, which goes in whole if it completes first.
    @Test func aTricklingLiarCannotGetAnHonestPeerBanned() throws {
        let directory = try EngineTests.temporaryDirectory("simulation-trickle")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metainfo = try EngineTests.makeTorrent(named: "k.bin", size: 16_384, seed: 9, in: directory)
        let payload = try [UInt8](Data(contentsOf: directory.appendingPathComponent("k.bin")))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("k.bin"))
        let torrent = SimulatedTorrent(
            payload: payload, pieceLength: metainfo.pieceLength, infoHash: metainfo.wireInfoHash.bytes)
        let world = SimulatedWorld(seed: 13)
        let liar = SimulatedPeer(
            name: "liar", address: SocketAddress("10.9.2.1:6881")!,
            link: SimulatedLink(bytesPerSecond: 1 << 10, latencyNanoseconds: 5_000_000), torrent: torrent,
            lies: true, trickles: true)
        let honest = SimulatedPeer(
            name: "honest", address: SocketAddress("10.9.2.2:6881")!,
            link: SimulatedLink(bytesPerSecond: 16 << 10, latencyNanoseconds: 5_000_000), torrent: torrent,
            trickles: true)
        world.add(liar)
        world.add(honest)
        // Away at first: the liar has the block when the honest peer joins.
        honest.leave(at: 0, forSeconds: 2)
        let options = Self.options(directory, peers: [liar.address, honest.address], seed: 13)
        var log: [String] = []
        let session = DownloadSession(metainfo: metainfo, options: options) { log.append($0) }
        let reactor = Reactor(simulator: world)
        reactor.host(session)
        try reactor.run(
            shouldStop: { world.nanoseconds > 120_000_000_000 },
            until: { session.outcome != nil || world.nanoseconds > 180_000_000_000 })
        #expect(
            session.outcome.map { (try? $0.get()) == .completed } == true, "\(log.joined(separator: "\n"))")
        #expect(!session.peerDirectory.isBanned(honest.address), "\(log.joined(separator: "\n"))")
    }

    /// Stopped halfway (cleanly: writes land, resume data is saved) and started again in a new swarm,
    /// the download fetches only what it did not have.
    @Test(arguments: [21, 22])
    func aDownloadStoppedHalfwayResumesWithoutFetchingAgain(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let directory = try EngineTests.temporaryDirectory("simulation-resume-\(seed)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (metainfo, torrent) = try Self.makeTorrent(named: "r.bin", random: &random)
        var options = Self.options(directory, peers: [], seed: seed)
        var verifiedAtStop = 0
        var downloaded: [Int64] = []
        for visit in 0..<2 {
            let world = SimulatedWorld(seed: seed &+ UInt64(visit))
            options.peers = (0..<16).map { number in
                let peer = SimulatedPeer(
                    name: "p\(visit).\(number)", address: SocketAddress("10.7.\(visit).\(number + 1):6881")!,
                    link: SimulatedLink(
                        bytesPerSecond: UInt64(64 << 10) << UInt64.random(in: 0...3, using: &random),
                        latencyNanoseconds: UInt64.random(in: 5...100, using: &random) * 1_000_000),
                    torrent: torrent)
                world.add(peer)
                return peer.address
            }
            let session = DownloadSession(metainfo: metainfo, options: options)
            let reactor = Reactor(simulator: world)
            reactor.host(session)
            let limit: UInt64 = 300 * 1_000_000_000
            try reactor.run(
                shouldStop: {
                    (visit == 0 && session.verified.count >= metainfo.pieceCount / 2)
                        || world.nanoseconds > limit
                },
                until: { session.outcome != nil || world.nanoseconds > limit + 60_000_000_000 })
            let ended = session.outcome.map { "\($0)" } ?? "none: it never left its reactor"
            let expected: DownloadOutcome = visit == 0 ? .interrupted : .completed
            #expect(session.outcome.map { (try? $0.get()) == expected } == true, "seed \(seed): \(ended)")
            if visit == 0 { verifiedAtStop = session.verified.count }
            downloaded.append(session.downloadedBytes)
        }
        let written = try Data(contentsOf: directory.appendingPathComponent("r.bin"))
        let identical = Array(written) == torrent.payload
        #expect(identical, "seed \(seed): the file differs from what the peers hold")
        print(
            "simulation seed \(seed): stopped with \(verifiedAtStop) of \(metainfo.pieceCount) pieces, then fetched \(downloaded[1]) bytes"
        )
        // What the first visit verified is not fetched again; pieces it had in flight may be.
        let missing = Int64(metainfo.pieceCount - verifiedAtStop) * Int64(metainfo.pieceLength)
        #expect(
            downloaded[1] <= missing + 8 * Int64(metainfo.pieceLength),
            "seed \(seed): \(verifiedAtStop) of \(metainfo.pieceCount) pieces verified at the stop, then \(downloaded[1]) bytes fetched"
        )
    }

    /// A download limit holds on simulated time: fast peers, and the torrent arrives at the limit's pace.
    @Test func theDownloadLimitSetsThePace() throws {
        var random = SeededRandom(seed: 31)
        let directory = try EngineTests.temporaryDirectory("simulation-limit")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (metainfo, torrent) = try Self.makeTorrent(named: "l.bin", random: &random)
        let world = SimulatedWorld(seed: 31)
        var options = Self.options(directory, peers: [], seed: 31)
        options.peers = (0..<8).map { number in
            let peer = SimulatedPeer(
                name: "f\(number)", address: SocketAddress("10.8.0.\(number + 1):6881")!,
                link: SimulatedLink(bytesPerSecond: 8 << 20, latencyNanoseconds: 20_000_000), torrent: torrent
            )
            world.add(peer)
            return peer.address
        }
        let limit = 1 << 20
        options.maximumDownloadRateBytesPerSecond = limit
        let session = DownloadSession(metainfo: metainfo, options: options)
        let reactor = Reactor(simulator: world)
        reactor.host(session)
        try reactor.run(
            shouldStop: { world.nanoseconds > 600_000_000_000 }, until: { session.outcome != nil })
        #expect(session.outcome.map { (try? $0.get()) == .completed } == true)
        let seconds = Double(world.nanoseconds) / 1e9
        let paced = Double(metainfo.totalLength) / Double(limit)
        print(
            "simulation: \(metainfo.totalLength) bytes at a limit of \(limit) B/s took \(seconds) s (the limit's pace: \(paced) s)"
        )
        // Eight peers at 8 MiB/s each would bring it in well under a second without the limit.
        #expect(seconds >= paced * 0.9 && seconds <= paced * 1.2 + 1, "\(seconds) s against \(paced) s")
    }

    @Test func aSeedReplaysExactly() throws {
        let first = try Self.run(seed: 7, torrents: 2, peerCount: 20)
        let second = try Self.run(seed: 7, torrents: 2, peerCount: 20)
        #expect(first.finishedAt == second.finishedAt)
        #expect(first.trace == second.trace)
        #expect(first.trace.count > 40, "connections, departures and bans are traced")
    }
}
