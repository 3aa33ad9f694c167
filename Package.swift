// swift-tools-version:6.0
// Potluck: a BitTorrent engine for Linux on io_uring.
//
// Modules point down only: front ends → engine → protocol cores / I/O → C shims.
import PackageDescription

let package = Package(
    name: "Potluck",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "potluck", targets: ["potluck"]),
        .library(
            name: "PotluckCore",
            targets: [
                "TorrentModel", "Bencode", "Metainfo", "PeerWire", "Swarm", "Tracker", "DHT",
                "LocalDiscovery",
                "Storage",
                "URing",
                "Hashing",
                "Buffers", "TLS", "WebSeed",
            ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The daemon's HTTP server (control plane, not hot path).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The daemon's /metrics in Prometheus' text format (its registry directly: HELP lines need it).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C at the edge: liburing and OpenSSL's libcrypto and libssl, found with pkg-config.
        .systemLibrary(
            name: "CLibUring", path: "CSupport/CLibUring", pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]),
        .systemLibrary(
            name: "CLibCrypto", path: "CSupport/CLibCrypto", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CLibSSL", path: "CSupport/CLibSSL", pkgConfig: "libssl",
            providers: [.apt(["libssl-dev"])]),

        // Linux constants Swift's Glibc module leaves out (compiled with _GNU_SOURCE, apart).
        .target(name: "CLinux", path: "CSupport/CLinux"),
        // SHA-1 over sixteen messages at once in AVX-512 lanes (OpenSSL has no multi-message API).
        .target(name: "CSHA1Lanes", path: "CSupport/CSHA1Lanes"),

        // I/O and memory.
        .target(name: "Buffers"),
        // A lock ThreadSanitizer can see in its build (Swift's Mutex otherwise).
        .target(name: "Locking"),
        .target(
            name: "URing",
            dependencies: ["CLibUring", "CLinux", "Buffers"]),
        .target(name: "Hashing", dependencies: ["CLibCrypto", "CSHA1Lanes", "Buffers", "TorrentModel"]),
        // TLS over memory buffers (HTTPS trackers), so its bytes travel on the ring.
        .target(name: "TLS", dependencies: ["CLibSSL"]),

        // Pure protocol cores: bytes, events and `now` in; actions out. No I/O.
        .target(name: "TorrentModel"),
        .target(name: "Bencode"),
        .target(name: "Metainfo", dependencies: ["Bencode", "Hashing", "TorrentModel"]),
        .target(name: "PeerWire", dependencies: ["TorrentModel", "Bencode", "Hashing"]),
        .target(name: "Swarm", dependencies: ["TorrentModel"]),
        .target(name: "Tracker", dependencies: ["Bencode", "TorrentModel"]),
        // Web seeds (BEP 19): file URLs, range requests and a strict range-answer parser; HTTP URLs as
        // the tracker client parses them.
        .target(name: "WebSeed", dependencies: ["Metainfo", "Tracker", "TorrentModel"]),
        // The Transmission RPC protocol: HTTP requests in, calls on a backend protocol, HTTP responses out.
        .target(name: "TransmissionRPC", dependencies: ["TorrentModel"]),
        // The mainline DHT (BEP 5, 32, 42): KRPC, routing table, lookups and serving over one UDP socket.
        .target(name: "DHT", dependencies: ["Bencode", "TorrentModel", "Hashing"]),
        // Local Service Discovery (BEP 14): multicast announces, their schedule and what is heard.
        .target(name: "LocalDiscovery", dependencies: ["TorrentModel"]),

        // Storage: pieces onto files through the ring, resume data.
        .target(
            name: "Storage",
            dependencies: ["URing", "Buffers", "Hashing", "Metainfo", "TorrentModel", "Bencode", "CLinux"]),

        // The engine: one reactor thread drives the ring, the protocol cores, storage and hashing.
        .target(
            name: "Engine",
            dependencies: [
                "URing", "Buffers", "Hashing", "Metainfo", "PeerWire", "Swarm", "Storage", "TorrentModel",
                "Tracker", "TLS", "DHT", "WebSeed", "LocalDiscovery", "Locking", "CLinux", "OutboundHTTP",
            ]),

        // A blocking HTTP/1.1 client (http and https) for the few requests made off the rings: a
        // torrent-add URL, port-test, the benchmarks' RPC calls. No FoundationNetworking: it would load
        // libcurl and some thirty more libraries at every start.
        .target(name: "OutboundHTTP", dependencies: ["TLS", "Tracker"]),

        // Front ends.
        // What the commands and the benchmarks share: standard error, progress lines, number formats,
        // checked threads.
        .target(name: "CommandSupport", dependencies: ["URing"]),
        // `potluck bench`: measures the potluck binary (which it runs) beside other clients and tools.
        // Its `Interop` is a link to Tests/Interop, the harness that drives them, which the build copies
        // beside the binary: `.process` copies the files the link leads to (`.copy` would copy the link).
        .target(
            name: "PotluckBench",
            dependencies: [
                "CommandSupport", "Engine", "URing", "Hashing", "Buffers", "Locking", "CLinux",
                "OutboundHTTP",
                "Tracker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["Interop/README.md"],
            resources: [.process("Interop")]),
        // `potluck daemon`: the Transmission RPC over the engine, its HTTP server and its state folder.
        .target(
            name: "PotluckDaemon",
            dependencies: [
                "Engine", "TransmissionRPC", "Metainfo", "Storage", "TorrentModel", "Tracker", "URing",
                "Locking", "OutboundHTTP", "CLinux",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "PotluckCommands",
            dependencies: [
                "CommandSupport", "PotluckBench", "PotluckDaemon", "Engine", "URing", "Hashing", "Buffers",
                "Bencode",
                "Metainfo", "TorrentModel", "PeerWire", "Swarm", "Tracker", "TransmissionRPC", "CLinux",
                "Locking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(name: "potluck", dependencies: ["PotluckCommands"]),

        // Hot-path microbenchmarks: a plain executable (see README, "Benchmarks").
        .executableTarget(
            name: "potluck-microbench",
            dependencies: [
                "Buffers", "CommandSupport", "DHT", "Hashing", "PeerWire", "TorrentModel", "URing",
            ],
            path: "Benchmarks/Microbenchmarks"),

        .testTarget(name: "URingTests", dependencies: ["URing", "Buffers"]),
        .testTarget(name: "HashingTests", dependencies: ["Hashing", "Buffers"]),
        .testTarget(name: "BencodeTests", dependencies: ["Bencode"]),
        .testTarget(name: "MetainfoTests", dependencies: ["Metainfo", "Bencode", "Hashing"]),
        .testTarget(name: "TorrentModelTests", dependencies: ["TorrentModel"]),
        .testTarget(name: "PeerWireTests", dependencies: ["PeerWire", "TorrentModel", "Bencode", "Hashing"]),
        .testTarget(name: "SwarmTests", dependencies: ["Swarm", "TorrentModel"]),
        .testTarget(name: "TrackerTests", dependencies: ["Tracker", "Bencode", "TorrentModel"]),
        .testTarget(name: "OutboundHTTPTests", dependencies: ["OutboundHTTP", "Tracker", "TLS"]),
        .testTarget(name: "WebSeedTests", dependencies: ["WebSeed", "Metainfo", "Tracker", "TorrentModel"]),
        .testTarget(
            name: "TransmissionRPCTests", dependencies: ["TransmissionRPC", "TorrentModel", "Locking"]),
        .testTarget(name: "DHTTests", dependencies: ["DHT", "DHTSimulation", "Bencode", "TorrentModel"]),
        // Simulated DHT networks on virtual time, and issue #15's scale scenario; its 10,000-node run is
        // an executable that scripts/test builds in release (a debug build takes minutes).
        .target(name: "DHTSimulation", dependencies: ["DHT", "TorrentModel"], path: "Tests/DHTSimulation"),
        .executableTarget(
            name: "potluck-dht-simulation", dependencies: ["DHTSimulation"], path: "Tests/DHTScaleSimulation"),
        .testTarget(name: "LocalDiscoveryTests", dependencies: ["LocalDiscovery", "TorrentModel"]),
        .testTarget(
            name: "EngineTests",
            dependencies: [
                "Engine", "Tracker", "URing", "TorrentModel", "PeerWire", "Metainfo", "Hashing", "Storage",
                "Locking",
            ]),
        .testTarget(
            name: "StorageTests",
            dependencies: ["Storage", "URing", "Buffers", "Hashing", "Metainfo", "TorrentModel"]),
        .testTarget(name: "CommandSupportTests", dependencies: ["CommandSupport"]),
        .testTarget(
            name: "PotluckDaemonTests",
            dependencies: [
                "PotluckDaemon", "Engine", "TransmissionRPC", "Metainfo", "TorrentModel", "Hashing", "URing",
                "Locking",
            ]),
        .testTarget(name: "PotluckBenchTests", dependencies: ["PotluckBench", "CommandSupport", "URing"]),
        .testTarget(
            name: "PotluckCommandsTests",
            dependencies: [
                "PotluckCommands", "PotluckBench", "URing", "Hashing", "Buffers", "CLinux", "Locking",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
