import Testing
import TorrentModel
import TransmissionRPC

@Suite struct RequestDecodingTests {
    private func decode(_ method: String, _ arguments: String = "{}") throws(RPCFailure) -> RPCRequest {
        try RPCRequest(method: method, arguments: JSONValue(parsing: Array(arguments.utf8))!.objectValue!)
    }

    private func failure(_ method: String, _ arguments: String) -> String? {
        do {
            _ = try decode(method, arguments)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func idsTakeEveryFormTheSpecAllows() throws {
        let hash = String(repeating: "ab", count: 20)
        let cases: [(String, TorrentSelection)] = [
            ("{}", .all),
            (#"{"ids":null}"#, .all),
            (#"{"ids":7}"#, .only([.id(7)])),
            (#"{"ids":"recently-active"}"#, .recentlyActive),
            (#"{"ids":"\#(hash.uppercased())"}"#, .only([.hash(InfoHash(hex: hash)!)])),
            (#"{"ids":[1,"\#(hash)",3.0]}"#, .only([.id(1), .hash(InfoHash(hex: hash)!), .id(3)])),
            (#"{"ids":[]}"#, .only([])),
            (#"{"ids":"not-a-hash"}"#, .only([])),
        ]
        for (arguments, expected) in cases {
            #expect(try decode("torrent-stop", arguments) == .torrentAction(.stop, expected), "\(arguments)")
        }
    }

    @Test func idsOfTheWrongTypeAreAClearError() {
        for arguments in [#"{"ids":true}"#, #"{"ids":{"a":1}}"#, #"{"ids":[1,[2]]}"#, #"{"ids":1.5}"#] {
            #expect(
                failure("torrent-start", arguments)?.hasPrefix("argument 'ids' must be") == true,
                "\(arguments)")
        }
    }

    @Test func everyActionMethodDecodes() throws {
        for action in TorrentAction.allCases {
            #expect(try decode(action.rawValue, #"{"ids":[2]}"#) == .torrentAction(action, .only([.id(2)])))
        }
        #expect(try decode("session-stats") == .sessionStats)
        #expect(try decode("session-close") == .sessionClose)
        #expect(try decode("port-test") == .portTest)
        #expect(try decode("blocklist-update") == .blocklistUpdate)
        #expect(failure("group-get", "{}") == "method name not recognized")
        #expect(failure("torrent_get", "{}") == "method name not recognized")
    }

    @Test func torrentGetKeepsKnownFieldsInOrderAndNeedsAFieldList() throws {
        let request = try decode(
            "torrent-get", #"{"fields":["name","bogus","peer-limit",7,"id"],"format":"table"}"#)
        #expect(request == .torrentGet(fields: [.name, .peerLimit, .id], selection: .all, format: .table))
        #expect(failure("torrent-get", "{}") == "no fields specified")
        #expect(failure("torrent-get", #"{"fields":"name"}"#) == "no fields specified")
        #expect(failure("torrent-get", #"{"fields":[],"format":"csv"}"#)?.contains("'format'") == true)
        // Each field at most twice (a table repeats a column for each): every field twice is accepted.
        let every = TorrentField.allCases + TorrentField.allCases
        let twice = every.map { #""\#($0.rawValue)""# }
        let repeated = try decode("torrent-get", #"{"fields":[\#(twice.joined(separator: ","))]}"#)
        #expect(repeated == .torrentGet(fields: every, selection: .all, format: .objects))
        let tooMany = twice + [#""name""#]
        #expect(
            failure("torrent-get", #"{"fields":[\#(tooMany.joined(separator: ","))]}"#)?.contains("at most")
                == true)
    }

    @Test func torrentAddTellsSourcesApart() throws {
        func source(_ arguments: String) throws -> TorrentSource {
            guard case .torrentAdd(let add) = try decode("torrent-add", arguments) else {
                throw RPCFailure("")
            }
            return add.source
        }
        #expect(try source(#"{"filename":"magnet:?xt=urn:btih:abc"}"#) == .magnet("magnet:?xt=urn:btih:abc"))
        #expect(
            try source(#"{"filename":"HTTPS://x.example/a.torrent"}"#) == .url("HTTPS://x.example/a.torrent"))
        #expect(try source(#"{"filename":"/tmp/a.torrent"}"#) == .file("/tmp/a.torrent"))
        // "d4:infoe" in base64, wrapped as some clients wrap it.
        #expect(try source(#"{"metainfo":"ZDQ6aW5m\nb2U="}"#) == .metainfo(Array("d4:infoe".utf8)))
        #expect(failure("torrent-add", "{}") == "no filename or metainfo specified")
        #expect(failure("torrent-add", #"{"metainfo":"!!!"}"#) == "unrecognized info")
        #expect(failure("torrent-add", #"{"metainfo":42}"#) == "argument 'metainfo' must be a string")
    }

    @Test func torrentAddCarriesItsOptions() throws {
        let request = try decode(
            "torrent-add",
            #"{"filename":"magnet:?x","download-dir":"/data/tv","paused":true,"labels":[" tv ","sonarr"],"#
                + #""peer-limit":30,"bandwidthPriority":1,"files-unwanted":[2],"priority-high":[],"cookies":"a=b"}"#
        )
        guard case .torrentAdd(let add) = request else {
            Issue.record("not torrent-add: \(request)")
            return
        }
        #expect(add.downloadDirectory == "/data/tv")
        #expect(add.paused == true)
        #expect(add.cookies == "a=b")
        #expect(add.changes.labels == ["tv", "sonarr"])
        #expect(add.changes.peerLimit == 30)
        #expect(add.changes.bandwidthPriority == .high)
        #expect(add.changes.filesUnwanted == .indices([2]))
        #expect(add.changes.priorityHigh == .all)
        #expect(
            failure("torrent-add", #"{"filename":"x","download-dir":"rel/dir"}"#)
                == "download directory path is not absolute")
        #expect(
            failure("torrent-add", #"{"filename":"x","paused":"yes"}"#)
                == "argument 'paused' must be a boolean")
    }

    @Test func torrentSetDecodesEveryArgument() throws {
        let request = try decode(
            "torrent-set",
            #"{"ids":[4],"labels":["a"],"files-wanted":[1,0,1,1],"files-unwanted":[],"priority-high":[0],"#
                + #""priority-low":[1],"priority-normal":[2],"uploadLimit":50,"uploadLimited":true,"#
                + #""downloadLimit":70,"downloadLimited":false,"seedRatioLimit":1.5,"seedRatioMode":1,"#
                + #""seedIdleLimit":10,"seedIdleMode":2,"location":"/new","honorsSessionLimits":false,"#
                + #""peer-limit":9,"queuePosition":0,"bandwidthPriority":-1,"trackerAdd":["udp://t"],"#
                + #""trackerRemove":[3],"trackerList":"a\n\nb","group":"slow","trackerReplace":[2,"http://n/a"]}"#
        )
        var expected = TorrentChanges()
        expected.labels = ["a"]
        expected.filesWanted = .indices([0, 1])
        expected.filesUnwanted = .all
        expected.priorityHigh = .indices([0])
        expected.priorityLow = .indices([1])
        expected.priorityNormal = .indices([2])
        expected.uploadLimit = 50
        expected.uploadLimited = true
        expected.downloadLimit = 70
        expected.downloadLimited = false
        expected.seedRatioLimit = 1.5
        expected.seedRatioMode = .single
        expected.seedIdleLimit = 10
        expected.seedIdleMode = .unlimited
        expected.location = "/new"
        expected.honorsSessionLimits = false
        expected.peerLimit = 9
        expected.queuePosition = 0
        expected.bandwidthPriority = .low
        expected.trackerAdd = ["udp://t"]
        expected.trackerRemove = [3]
        expected.trackerList = "a\n\nb"
        expected.trackerReplace = [TrackerReplacement(id: 2, announce: "http://n/a")]
        expected.group = "slow"
        #expect(request == .torrentSet(.only([.id(4)]), expected))
        #expect(try decode("torrent-set", #"{"seedRatioLimit":2}"#) == .torrentSet(.all, changesWithRatio(2)))
    }

    /// `trackerReplace` alternates ids and URLs; anything else is refused with the argument named.
    @Test func trackerReplaceTakesIdAndURLPairs() {
        for arguments in [
            #"{"trackerReplace":[1]}"#, #"{"trackerReplace":["http://a/announce",1]}"#,
            #"{"trackerReplace":{"1":"x"}}"#,
        ] {
            #expect(failure("torrent-set", arguments)?.contains("'trackerReplace'") == true, "\(arguments)")
        }
    }

    private func changesWithRatio(_ ratio: Double) -> TorrentChanges {
        var changes = TorrentChanges()
        changes.seedRatioLimit = ratio
        return changes
    }

    @Test func wrongArgumentTypesAreClearErrorsNotCrashes() {
        let cases: [(String, String, String)] = [
            ("torrent-set", #"{"uploadLimit":"fast"}"#, "argument 'uploadLimit' must be an integer"),
            ("torrent-set", #"{"uploadLimit":1.5}"#, "argument 'uploadLimit' must be an integer"),
            ("torrent-set", #"{"seedRatioLimit":"2"}"#, "argument 'seedRatioLimit' must be a number"),
            ("torrent-set", #"{"seedRatioMode":7}"#, "argument 'seedRatioMode' must be one of 0, 1, 2"),
            (
                "torrent-set", #"{"bandwidthPriority":5}"#,
                "argument 'bandwidthPriority' must be one of -1, 0, 1"
            ),
            (
                "torrent-set", #"{"files-wanted":[0,"1"]}"#,
                "argument 'files-wanted' must be a list of integers"
            ),
            ("torrent-set", #"{"labels":"tv"}"#, "argument 'labels' must be a list of strings"),
            ("torrent-set", #"{"labels":["a,b"]}"#, "labels cannot contain comma (,) character"),
            ("torrent-set", #"{"labels":["  "]}"#, "labels cannot be empty"),
            (
                "torrent-set", #"{"labels":["# + String(repeating: #""a","#, count: 65) + #""a"]}"#,
                "at most 64 labels, not 66"
            ),
            (
                "torrent-set", #"{"labels":[""# + String(repeating: "x", count: 257) + #""]}"#,
                "a label is at most 256 bytes long"
            ),
            (
                "torrent-set", #"{"group":""# + String(repeating: "x", count: 257) + #""}"#,
                "the group is at most 256 bytes long"
            ),
            ("torrent-set", #"{"location":"relative"}"#, "new location path is not absolute"),
            (
                "torrent-remove", #"{"delete-local-data":"yes"}"#,
                "argument 'delete-local-data' must be a boolean"
            ),
            ("torrent-set-location", "{}", "no location"),
            ("torrent-set-location", #"{"location":"x"}"#, "new location path is not absolute"),
            ("torrent-rename-path", #"{"path":"a"}"#, "torrent-rename-path needs 'path' and 'name'"),
            ("free-space", "{}", "directory path argument is missing"),
            ("free-space", #"{"path":"tmp"}"#, "directory path is not absolute"),
            ("session-get", #"{"fields":[1]}"#, "argument 'fields' must be a list of strings"),
            ("session-set", #"{"speed-limit-down":"x"}"#, "argument 'speed-limit-down' must be an integer"),
            (
                "session-set", #"{"encryption":"always"}"#,
                #"argument 'encryption' must be "required", "preferred" or "tolerated""#
            ),
            ("session-set", #"{"download-dir":"dl"}"#, "download directory path is not absolute"),
            (
                "torrent-set-location", #"{"location":"/"# + String(repeating: "a", count: 4095) + #""}"#,
                "new location path is longer than 4095 bytes"
            ),
            (
                "torrent-add",
                #"{"filename":"x","download-dir":"/"# + String(repeating: "a", count: 5000) + #""}"#,
                "download directory path is longer than 4095 bytes"
            ),
            (
                "torrent-set",
                #"{"trackerAdd":["#
                    + Array(repeating: #""http://a/announce""#, count: 1_001).joined(separator: ",") + "]}",
                "argument 'trackerAdd' names 1001 trackers; at most 1000"
            ),
            (
                "torrent-get", #"{"fields":["id","files","files","files"]}"#,
                "argument 'fields' names 'files' more than twice"
            ),
            (
                "session-set", #"{"incomplete-dir":"inc"}"#,
                "incomplete torrents directory path is not absolute"
            ),
        ]
        for (method, arguments, message) in cases {
            #expect(failure(method, arguments) == message, "\(method) \(arguments)")
        }
    }

    @Test func removeAndLocationAndRenameCarryTheirFlags() throws {
        #expect(
            try decode("torrent-remove", #"{"ids":[1],"delete-local-data":true}"#)
                == .torrentRemove(.only([.id(1)]), deleteLocalData: true))
        #expect(
            try decode("torrent-remove", #"{"ids":1}"#)
                == .torrentRemove(.only([.id(1)]), deleteLocalData: false))
        #expect(
            try decode("torrent-set-location", #"{"ids":[1],"location":"/m","move":true}"#)
                == .torrentSetLocation(.only([.id(1)]), location: "/m", move: true))
        #expect(
            try decode("torrent-rename-path", #"{"ids":[1],"path":"a/b","name":"c"}"#)
                == .torrentRenamePath(.only([.id(1)]), path: "a/b", name: "c"))
        #expect(try decode("free-space", #"{"path":"/srv"}"#) == .freeSpace(path: "/srv"))
    }

    @Test func sessionSetKeepsWritableKeysAndIgnoresTheRest() throws {
        let request = try decode(
            "session-set",
            #"{"speed-limit-down":500,"speed-limit-down-enabled":1,"seedRatioLimit":1,"encryption":"required","#
                + #""download-dir":"/data","config-dir":"/etc","version":"9","unknown-key":true}"#)
        guard case .sessionSet(let changes) = request else {
            Issue.record("not session-set: \(request)")
            return
        }
        #expect(
            changes.keys == [
                .speedLimitDown, .speedLimitDownEnabled, .seedRatioLimit, .encryption, .downloadDirectory,
            ])
        let before = SessionSettings(downloadDirectory: "/old", configDirectory: "/cfg")
        let after = changes.applied(to: before)
        #expect(after.speedLimitDown == 500)
        #expect(after.speedLimitDownEnabled)
        #expect(after.seedRatioLimit == 1)
        #expect(after.encryption == .required)
        #expect(after.downloadDirectory == "/data")
        #expect(after.configDirectory == "/cfg")
        #expect(after.peerPort == before.peerPort)
    }
}
