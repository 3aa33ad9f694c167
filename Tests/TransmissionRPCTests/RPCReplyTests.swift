import Testing
import TorrentModel
import TransmissionRPC

@Suite struct RPCReplyTests {
    /// What `transmission-remote -l` (4.0) sends: remote.cc's ListKeys, TAG_LIST = 6, no ids for "all".
    static let remoteList =
        #"{"arguments":{"fields":["error","errorString","eta","id","isFinished","leftUntilDone","name","#
        + #""peersGettingFromUs","peersSendingToUs","rateDownload","rateUpload","sizeWhenDone","status","#
        + #""uploadRatio"]},"method":"torrent-get","tag":6}"#

    @Test func transmissionRemoteListGetsItsFieldsAsIntegersAndItsTag() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let reply = try await harness.call(Self.remoteList)
        #expect(reply["tag"] == .integer(6))
        #expect(reply["result"] == .string("success"))
        let torrents = try #require(reply["arguments"]?.objectValue?["torrents"]?.arrayValue)
        #expect(torrents.count == 2)
        let ubuntu = try #require(torrents[0].objectValue)
        #expect(
            Set(ubuntu.keys) == [
                "error", "errorString", "eta", "id", "isFinished", "leftUntilDone", "name",
                "peersGettingFromUs",
                "peersSendingToUs", "rateDownload", "rateUpload", "sizeWhenDone", "status", "uploadRatio",
            ])
        // remote.cc reads these with tr_variantDictFindInt, which ignores reals.
        #expect(ubuntu["rateDownload"] == .integer(250_000))
        #expect(ubuntu["leftUntilDone"] == .integer(1_000))
        #expect(ubuntu["status"] == .integer(4))
        #expect(ubuntu["eta"] == .integer(-1))
        #expect(ubuntu["uploadRatio"] == .real(0.5))
        #expect(ubuntu["isFinished"] == .bool(false))
        let fields = await harness.backend.lastRequestedFields
        #expect(fields.contains(.rateDownload) && !fields.contains(.peers))
    }

    @Test func specExampleTorrentGetByIDs() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let reply = try await harness.call(
            #"{"arguments":{"fields":["id","name","totalSize"],"ids":[7,10]},"method":"torrent-get","tag":39693}"#
        )
        let expected: JSONValue = .object([
            "arguments": .object([
                "torrents": .array([
                    .object([
                        "id": .integer(7), "name": .string("Ubuntu x86_64 DVD"),
                        "totalSize": .integer(9_923_890_123),
                    ]),
                    .object([
                        "id": .integer(10), "name": .string("Fedora x86_64 DVD"),
                        "totalSize": .integer(34_983_493_932),
                    ]),
                ])
            ]),
            "result": .string("success"),
            "tag": .integer(39693),
        ])
        #expect(JSONValue.object(reply) == expected)
    }

    @Test func tableFormatAndRecentlyActiveRemovals() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        await harness.backend.markRecentlyActive([10])
        _ = try await harness.call(#"{"method":"torrent-remove","arguments":{"ids":[7]}}"#)
        let reply = try await harness.call(
            #"{"method":"torrent-get","arguments":{"ids":"recently-active","format":"table","fields":["id","labels"]}}"#
        )
        let arguments = try #require(reply["arguments"]?.objectValue)
        #expect(
            arguments["torrents"]
                == .array([
                    .array([.string("id"), .string("labels")]),
                    .array([.integer(10), .array([.string("linux"), .string("iso")])]),
                ]))
        #expect(arguments["removed"] == .array([.integer(7)]))

        let plain = try await harness.call(#"{"method":"torrent-get","arguments":{"fields":["id"]}}"#)
        #expect(plain["arguments"]?.objectValue?["removed"] == nil)
    }

    @Test func filesTrackersAndPiecesHaveTheShapesClientsRead() async throws {
        var torrent = TorrentSnapshot.examples[0]
        torrent.pieces = [0b1010_0000]
        torrent.pieceCount = 3
        let harness = RPCHarness(torrents: [torrent])
        let reply = try await harness.call(
            #"{"method":"torrent-get","arguments":{"fields":["files","fileStats","priorities","wanted","trackers","#
                + #""trackerStats","trackerList","pieces","file-count","hashString","peersFrom"]}}"#)
        let fields = try #require(
            reply["arguments"]?.objectValue?["torrents"]?.arrayValue?.first?.objectValue)
        #expect(
            fields["files"]?.arrayValue?.first
                == .object([
                    "name": .string("ubuntu/ubuntu.iso"), "length": .integer(9_923_890_000),
                    "bytesCompleted": .integer(9_923_889_000),
                ]))
        #expect(
            fields["fileStats"]?.arrayValue?.last
                == .object(["bytesCompleted": .integer(0), "wanted": .bool(false), "priority": .integer(-1)]))
        #expect(fields["priorities"] == .array([.integer(0), .integer(-1)]))
        #expect(fields["wanted"] == .array([.integer(1), .integer(0)]))
        #expect(fields["file-count"] == .integer(2))
        #expect(fields["hashString"] == .string(String(repeating: "07", count: 20)))
        #expect(fields["pieces"] == .string("oA=="))
        #expect(
            fields["trackerList"]
                == .string("https://a.example/announce\nudp://b.example:6969\n\nhttps://c.example/announce\n")
        )
        #expect(
            Set(fields["trackers"]?.arrayValue?.first?.objectValue?.keys ?? [:].keys)
                == ["announce", "id", "scrape", "sitename", "tier"])
        #expect(fields["trackerStats"]?.arrayValue?.first?.objectValue?.count == 27)
        #expect(fields["peersFrom"]?.objectValue?.count == 7)
    }

    @Test func sessionGetReportsVersionsAndOnlyTheRequestedFields() async throws {
        let harness = RPCHarness()
        let reply = try await harness.call(
            #"{"method":"session-get","arguments":{"fields":["version","rpc-version","rpc-version-minimum","#
                + #""session-id","download-dir","peer-port","speed-limit-down","config-dir","no-such-field"]},"tag":0}"#
        )
        #expect(reply["tag"] == .integer(0))
        #expect(
            reply["arguments"]
                == .object([
                    "version": .string("4.0.6 (Potluck 0.2.0)"), "rpc-version": .integer(17),
                    "rpc-version-minimum": .integer(14), "session-id": .string(RPCHarness.sessionID),
                    "download-dir": .string("/srv/downloads"), "peer-port": .integer(51413),
                    "speed-limit-down": .integer(100), "config-dir": .string("/var/lib/potluck"),
                ]))
    }

    @Test func sessionGetWithoutFieldsHasEverything() async throws {
        let harness = RPCHarness()
        let arguments = try #require(
            try await harness.call(#"{"method":"session-get"}"#)["arguments"]?.objectValue)
        for key in SessionSettingKey.allCases { #expect(arguments[key.rawValue] != nil, "\(key)") }
        #expect(arguments["download-dir-free-space"] == .integer(1_000_000))
        #expect(arguments["rpc-version-semver"] == .string("5.3.0"))
        #expect(arguments["units"]?.objectValue?["speed-bytes"] == .integer(1000))
        // A whole real goes on the wire as `2`; every client reading a real accepts that.
        #expect(arguments["seedRatioLimit"]?.realValue == 2)
        #expect(arguments["encryption"] == .string("preferred"))
    }

    @Test func sessionSetChangesTheBackendsSettings() async throws {
        let harness = RPCHarness()
        let reply = try await harness.call(
            #"{"method":"session-set","arguments":{"alt-speed-enabled":true,"peer-port":6881}}"#)
        #expect(reply["result"] == .string("success"))
        let settings = await harness.backend.settings
        #expect(settings.altSpeedEnabled && settings.peerPort == 6881)
    }

    @Test func sessionStatsShape() async throws {
        let harness = RPCHarness()
        var statistics = SessionStatistics()
        statistics.torrentCount = 3
        statistics.activeTorrentCount = 2
        statistics.pausedTorrentCount = 1
        statistics.downloadSpeed = 1234
        statistics.current.downloadedBytes = 99
        statistics.cumulative.sessionCount = 5
        await harness.backend.setStatistics(statistics)
        let arguments = try #require(
            try await harness.call(#"{"method":"session-stats"}"#)["arguments"]?.objectValue)
        #expect(
            Set(arguments.keys) == [
                "activeTorrentCount", "downloadSpeed", "pausedTorrentCount", "torrentCount", "uploadSpeed",
                "cumulative-stats", "current-stats",
            ])
        #expect(arguments["downloadSpeed"] == .integer(1234))
        #expect(arguments["current-stats"]?.objectValue?["downloadedBytes"] == .integer(99))
        #expect(arguments["cumulative-stats"]?.objectValue?["sessionCount"] == .integer(5))
        #expect(
            Set(arguments["current-stats"]?.objectValue?.keys ?? [:].keys)
                == ["uploadedBytes", "downloadedBytes", "filesAdded", "sessionCount", "secondsActive"])
    }

    @Test func torrentAddReportsAddedThenDuplicate() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let metainfo = Base64Text.of([UInt8](repeating: 0x42, count: 20))
        let body =
            #"{"method":"torrent-add","arguments":{"metainfo":"\#(metainfo)","labels":["tv"]},"tag":8}"#
        let added = try await harness.call(body)
        #expect(added["tag"] == .integer(8))
        #expect(
            added["arguments"]
                == .object([
                    "torrent-added": .object([
                        "id": .integer(11), "name": .string("added 11"),
                        "hashString": .string(String(repeating: "42", count: 20)),
                    ])
                ]))
        let duplicate = try await harness.call(body)
        #expect(duplicate["result"] == .string("success"))
        #expect(duplicate["arguments"]?.objectValue?["torrent-duplicate"]?.objectValue?["id"] == .integer(11))
        #expect(await harness.backend.lastAdd?.changes.labels == ["tv"])
    }

    @Test func backendFailuresBecomeTheResult() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let outOfRange = try await harness.call(
            #"{"method":"torrent-set","arguments":{"ids":[7],"files-wanted":[5]},"tag":3}"#)
        #expect(outOfRange["result"] == .string("file index out of range"))
        #expect(outOfRange["arguments"] == .object([:]))
        #expect(outOfRange["tag"] == .integer(3))
        let magnet = try await harness.call(
            #"{"method":"torrent-add","arguments":{"filename":"magnet:?xt=x"}}"#)
        #expect(magnet["result"] == .string("unrecognized info"))
    }

    @Test func malformedAndMethodlessRequestsStillGetA200WithTheirTag() async throws {
        let harness = RPCHarness()
        let cases: [(String, String, JSONValue?)] = [
            ("{not json", "no method name", nil),
            ("[1,2]", "no method name", nil),
            (#"{"tag":5}"#, "no method name", .integer(5)),
            (#"{"method":7,"tag":"t"}"#, "no method name", .string("t")),
            (#"{"method":"torrent-fly","tag":9}"#, "method name not recognized", .integer(9)),
            (
                #"{"method":"torrent-get","arguments":[1],"tag":1}"#, "'arguments' must be an object",
                .integer(1)
            ),
            (
                #"{"method":"blocklist-update"}"#,
                "blocklist-update is not supported: Potluck has no blocklist", nil
            ),
        ]
        for (body, result, tag) in cases {
            let reply = try await harness.call(body)
            #expect(reply["result"] == .string(result), "\(body)")
            #expect(reply["tag"] == tag, "\(body)")
            #expect(reply["arguments"] == .object([:]), "\(body)")
        }
    }

    @Test func actionsReachTheBackendWithResolvedTorrents() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let fedoraHash = String(repeating: "0a", count: 20)
        _ = try await harness.call(#"{"method":"torrent-stop","arguments":{"ids":["\#(fedoraHash)"]}}"#)
        _ = try await harness.call(#"{"method":"queue-move-top","arguments":{"ids":[7,99]}}"#)
        _ = try await harness.call(#"{"method":"torrent-verify"}"#)
        let actions = await harness.backend.actions
        #expect(actions.map(\.0) == [.stop, .queueMoveTop, .verify])
        #expect(actions.map(\.1) == [[10], [7], [7, 10]])
    }

    @Test func renamePathNeedsExactlyOneTorrent() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let two = try await harness.call(
            #"{"method":"torrent-rename-path","arguments":{"ids":[7,10],"path":"ubuntu","name":"u"}}"#)
        #expect(two["result"] == .string("torrent-rename-path requires 1 torrent"))
        let one = try await harness.call(
            #"{"method":"torrent-rename-path","arguments":{"ids":[7],"path":"ubuntu","name":"u"}}"#)
        #expect(
            one["arguments"] == .object(["id": .integer(7), "path": .string("ubuntu"), "name": .string("u")]))
        #expect(await harness.backend.renamed.map(\.name) == ["u"])
    }

    @Test func freeSpacePortTestLocationAndClose() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let space = try await harness.call(#"{"method":"free-space","arguments":{"path":"/srv/downloads"}}"#)
        #expect(
            space["arguments"]
                == .object([
                    "path": .string("/srv/downloads"), "size-bytes": .integer(1_000_000),
                    "total_size": .integer(4_000_000),
                ]))
        let missing = try await harness.call(#"{"method":"free-space","arguments":{"path":"/nowhere"}}"#)
        #expect(missing["result"] == .string("No such file or directory"))
        let port = try await harness.call(#"{"method":"port-test"}"#)
        #expect(port["arguments"] == .object(["port-is-open": .bool(true)]))
        _ = try await harness.call(
            #"{"method":"torrent-set-location","arguments":{"ids":[10],"location":"/m"}}"#)
        #expect(await harness.backend.torrents.last?.downloadDir == "/m")
        _ = try await harness.call(#"{"method":"session-close"}"#)
        #expect(await harness.backend.isClosed)
    }

    @Test func nonFiniteRealsAreWrittenAsNull() {
        let value = JSONValue.object(["ratio": .real(.infinity), "n": .integer(1), "path": .string("/a/b")])
        #expect(String(decoding: value.serialized, as: UTF8.self) == #"{"n":1,"path":"/a/b","ratio":null}"#)
    }
}
