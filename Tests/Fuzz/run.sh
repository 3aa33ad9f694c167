#!/usr/bin/env bash
# Builds the libFuzzer harnesses in Tests/Fuzz with AddressSanitizer and runs each in turn.
#
#   Tests/Fuzz/run.sh [seconds-per-harness] [harness...]   time-boxed run (default 30 s each)
#   Tests/Fuzz/run.sh --runs N [harness...]                each harness to N executions (the long run)
#   Tests/Fuzz/run.sh --runs N --jobs J [harness...]       the same, J processes per harness (one a core)
#   Tests/Fuzz/run.sh --runs N --jobs J --continue [harness...]
#                                       resumes a long run that was cut short (the machine stopped)
#
# With no harness named, all of them run, one at a time. The long run prints, per harness, the
# executions and the wall time libFuzzer reports, and appends them to .build-fuzz/long-run.md.
#
# A long run on two cores can outlast the time a machine is lent for. `--continue` counts what the cut
# run did (the last progress line of its log: executions of the jobs that had reported, and the time),
# keeps that log as <harness>.sitting-K.log, and fuzzes only the executions still missing, from the
# corpus the earlier sittings grew. That is what fork mode does anyway between its jobs: each job is a
# new process started from the shared corpus. The table's row says how many sittings the run took.
#
# SwiftPM cannot build libFuzzer binaries, so each module the harness needs is compiled with swiftc
# into .build-fuzz/ (git-ignored) as its own module, in dependency order (Hashing's C SHA-1 lanes with
# clang), then linked with the harness and the shared helpers in Tests/Fuzz/Support. Seed corpora are
# written here too and grow across runs. Crash inputs are saved under .build-fuzz/artifacts/<harness>/;
# the script exits non-zero if any harness found one. Hashing is made deterministic so that a crash
# input replays exactly.
set -euo pipefail

seconds=30
runs=""
jobs=1
continuing=0
if [[ "${1:-}" == --runs ]]; then
    runs="${2:?--runs needs an execution count}"
    shift 2
    if [[ "${1:-}" == --jobs ]]; then
        jobs="${2:?--jobs needs a process count}"
        shift 2
    fi
    if [[ "${1:-}" == --continue ]]; then
        ((jobs > 1)) || { echo "--continue resumes fork-mode runs only: give --jobs 2 or more" >&2; exit 2; }
        continuing=1
        shift
    fi
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.build-fuzz"
cd "$root"
mkdir -p "$out/modules"
export SWIFT_DETERMINISTIC_HASHING=1
# libFuzzer reports the trap itself; Swift's backtracer would only trip AddressSanitizer reading memory.
export SWIFT_BACKTRACE=enable=no
# The long run skips AddressSanitizer's record of where each block was allocated and freed: unwinding
# the stack for every allocation took 14 % of KRPCFuzz's profile (449 → 510 executions a second
# without it, the builder's 1,200 → 1,390). It still catches every error; replaying a crash input with
# the default ASAN_OPTIONS shows the allocation stacks.
if [[ -n "$runs" ]]; then export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}"; fi

# Each harness and the modules it links, in dependency order.
declare -A harness_modules=(
    [BencodeFuzz]="Bencode"
    [MetainfoFuzz]="TorrentModel Bencode Buffers Hashing Metainfo"
    [BuilderFuzz]="TorrentModel Bencode Buffers Hashing Metainfo"
    [TrackerResponseFuzz]="TorrentModel Bencode Tracker"
    [UDPTrackerFuzz]="TorrentModel Bencode Tracker"
    [WireDecoderFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [PeerConnectionFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [EncryptionHandshakeFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [ExtensionHandshakeFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [KRPCFuzz]="TorrentModel Bencode Buffers Hashing DHT"
    [MetadataMessageFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [MetadataFetchFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [PexFuzz]="TorrentModel Bencode Buffers Hashing PeerWire"
    [WebSeedResponseFuzz]="TorrentModel Bencode Buffers Hashing Metainfo Tracker WebSeed"
    [LocalDiscoveryFuzz]="TorrentModel LocalDiscovery"
    [PieceLayerFetchFuzz]="TorrentModel Bencode Buffers Hashing Metainfo PeerWire"
)
all_harnesses=(BencodeFuzz MetainfoFuzz BuilderFuzz TrackerResponseFuzz UDPTrackerFuzz WireDecoderFuzz
    PeerConnectionFuzz EncryptionHandshakeFuzz ExtensionHandshakeFuzz KRPCFuzz MetadataMessageFuzz MetadataFetchFuzz PexFuzz
    WebSeedResponseFuzz LocalDiscoveryFuzz PieceLayerFetchFuzz)
module_order=(TorrentModel Bencode Buffers Hashing Metainfo Tracker WebSeed PeerWire DHT LocalDiscovery)
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] || harnesses=("${all_harnesses[@]}")
for harness in "${harnesses[@]}"; do
    [[ -n "${harness_modules[$harness]:-}" ]] || { echo "unknown harness $harness" >&2; exit 2; }
done

# Optimised, but with the debug assertion configuration so that a failed precondition prints its message.
# Cross-module optimisation lets a harness's generic types (`MetadataFetch<Int>`, say) be specialised
# instead of looking up their metadata at run time: the metadata stage's and the piece layers' harnesses
# ran about twice as fast with it, the others up to a fifth faster (fixed runs from one corpus and seed).
swift_flags=(-sanitize=fuzzer,address -parse-as-library -O -cross-module-optimization -assert-config Debug -g
    -use-ld=lld -package-name potluck
    -I "$out/modules" -I CSupport/CLibCrypto -I CSupport/CSHA1Lanes/include)

# build_module NAME: compiles Sources/NAME into one object plus a module interface other code can import.
build_module() {
    local name="$1"
    echo "== compiling module $name"
    swiftc "${swift_flags[@]}" -wmo -module-name "$name" -emit-module \
        -emit-module-path "$out/modules/$name.swiftmodule" -c Sources/"$name"/*.swift -o "$out/modules/$name.o"
}

# build_c_module NAME: compiles the C files of CSupport/NAME into one object (Hashing's SHA-1 lanes).
build_c_module() {
    local name="$1" objects=()
    echo "== compiling C module $name"
    for file in CSupport/"$name"/*.c; do
        objects+=("$out/modules/$name-$(basename "$file" .c).o")
        clang -O2 -g -fsanitize=address -I CSupport/"$name"/include -c "$file" -o "${objects[-1]}"
    done
    ld.lld -r "${objects[@]}" -o "$out/modules/$name.o"
}

# build_harness NAME: links Tests/Fuzz/NAME.swift and the shared helpers against its modules' objects.
build_harness() {
    local name="$1"
    local objects=()
    for module in ${harness_modules[$name]}; do
        objects+=("$out/modules/$module.o")
        if [[ "$module" == Hashing ]]; then objects+=("$out/modules/CSHA1Lanes.o"); fi
    done
    echo "== linking $name"
    swiftc "${swift_flags[@]}" -module-name "$name" Tests/Fuzz/"$name".swift Tests/Fuzz/Support/*.swift \
        "${objects[@]}" -lcrypto -o "$out/$name"
}

# resume_cut_run NAME: if NAME's last log is a fork-mode long run that was cut short, adds its executions
# and time to NAME.sittings (one line per cut sitting) and keeps the log as NAME.sitting-K.log.
resume_cut_run() {
    local name="$1" log="$out/$1.log" last executions elapsed
    [[ -e "$log" ]] || return 0
    if grep -a -q -E 'fuzzed for [0-9]+ iterations' "$log"; then
        echo "== $name: its last long run finished; this one starts afresh"
        rm -f "$out/$name.sittings" "$out/$name".sitting-*.log
        return 0
    fi
    # Fork mode's progress: "#2413501: cov: 2143 ft: 13350 corp: 1037 exec/s: 375 oom/timeout/crash: 0/0/0
    # time: 3210s job: 111 dft_time: 0", counting the jobs that have reported.
    last=$(grep -a -E '^#[0-9]+: .* time: [0-9]+s' "$log" | tail -n 1 || true)
    [[ -n "$last" ]] || return 0
    if [[ "$last" != *"oom/timeout/crash: 0/0/0"* ]]; then
        echo "!! $name: its last run stopped at a crash, timeout or OOM; fix that and start afresh" >&2
        exit 1
    fi
    executions=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
    elapsed=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<<"$last")
    echo "$executions $elapsed" >>"$out/$name.sittings"
    mv "$log" "$out/$name.sitting-$(wc -l <"$out/$name.sittings").log"
    echo "== $name: an earlier sitting was cut after $executions executions in $elapsed s"
}

# seed FILE CONTENT: writes one seed input (printf escapes allowed) if it does not exist yet.
seed() {
    local file="$1"
    mkdir -p "$(dirname "$file")"
    [[ -e "$file" ]] || printf "$2" >"$file"
}

# Only the modules the chosen harnesses need, in dependency order.
needed=" "
for harness in "${harnesses[@]}"; do needed+="${harness_modules[$harness]} "; done
if [[ "$needed" == *" Hashing "* ]]; then build_c_module CSHA1Lanes; fi
for module in "${module_order[@]}"; do
    if [[ "$needed" == *" $module "* ]]; then build_module "$module"; fi
done
for harness in "${harnesses[@]}"; do build_harness "$harness"; done

hash20='aaaaaaaaaaaaaaaaaaaa'
hash32='bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
# A BEP 3 handshake with the DHT, fast and extension bits, infohash aaa..., peer id bbb...
handshake='\023BitTorrent protocol\000\000\000\000\000\020\000\005aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbb'
corpus="$out/corpus"
seed "$corpus/BencodeFuzz/string" '4:spam'
seed "$corpus/BencodeFuzz/integers" 'li3ei-3ei0ee'
seed "$corpus/BencodeFuzz/dictionary" 'd3:cow3:moo4:spam4:eggse'
seed "$corpus/BencodeFuzz/nested" 'd4:spaml1:a1:bee1:zd1:ali1eeee'
seed "$corpus/MetainfoFuzz/v1-single" \
    "d8:announce18:http://t.example/a4:infod6:lengthi100e4:name1:a12:piece lengthi16384e6:pieces20:${hash20}ee"
seed "$corpus/MetainfoFuzz/v1-multi" \
    "d4:infod5:filesld6:lengthi10e4:pathl1:xeed4:attr1:p6:lengthi5e4:pathl4:.pad1:5eed6:lengthi7e4:pathl1:y1:zeee4:name3:top12:piece lengthi16384e6:pieces20:${hash20}e8:url-listl9:http://w/ee"
seed "$corpus/MetainfoFuzz/v2-single" \
    "d4:infod9:file treed1:ad0:d6:lengthi100e11:pieces root32:${hash32}eee12:meta versioni2e4:name1:a12:piece lengthi16384ee12:piece layersdee"
seed "$corpus/MetainfoFuzz/hybrid-single" \
    "d4:infod9:file treed1:ad0:d6:lengthi100e11:pieces root32:${hash32}eee6:lengthi100e12:meta versioni2e4:name1:a12:piece lengthi16384e6:pieces20:${hash20}e12:piece layersdee"
seed "$corpus/MetainfoFuzz/magnet" \
    'magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=a+b&tr=udp%%3A%%2F%%2Ft%%3A1&x.pe=[::1]:1&so=0,2-4'

# Builder inputs: format, piece length, file count, then per file scale, length, path components.
seed "$corpus/BuilderFuzz/hybrid-two-files" '\002\000\002\001\001\000\001\003abc\001\002\000\002\002xy\001z'
seed "$corpus/BuilderFuzz/v2-single" '\001\001\000\001\004\000\000'

# Tracker answers: HTTP framing around bencoded announce and scrape bodies.
seed "$corpus/TrackerResponseFuzz/compact" \
    'HTTP/1.1 200 OK\r\nContent-Length: 62\r\n\r\nd8:completei1e10:incompletei0e8:intervali1800e5:peers6:\n\000\000\001\032\341e'
seed "$corpus/TrackerResponseFuzz/chunked-dict-peers" \
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11\r\nd8:intervali60e5:\r\n1c\r\npeersld2:ip3:::14:porti1eeee\r\n0\r\n\r\n'
seed "$corpus/TrackerResponseFuzz/redirect" 'HTTP/1.1 302 Found\r\nLocation: /other?x=1\r\nContent-Length: 0\r\n\r\n'
seed "$corpus/TrackerResponseFuzz/failure" 'd14:failure reason6:bannede'
seed "$corpus/TrackerResponseFuzz/scrape" \
    "d5:filesd20:${hash20}d8:completei1e10:downloadedi2e10:incompletei3eeee"
seed "$corpus/TrackerResponseFuzz/url" 'http://[2001:db8::1]:6969/announce?passkey=1'
# UDP scripts: flags byte, then steps (length + datagram, or 0x80|minutes to let time pass).
seed "$corpus/UDPTrackerFuzz/connect-announce" \
    '\000\020\000\000\000\000\000\000\000\000\001\002\003\004\005\006\007\010\032\000\000\000\001\000\000\000\000\000\000\007\010\000\000\000\001\000\000\000\002\n\000\000\001\032\341'
seed "$corpus/UDPTrackerFuzz/timeouts" '\000\201\201\202\204\210\220\240\277\277\277'
seed "$corpus/UDPTrackerFuzz/scrape-error" \
    '\002\020\000\000\000\000\000\000\000\000\001\002\003\004\005\006\007\010\015\000\000\000\003\000\000\000\000nope!'

cat >"$out/metainfo.dict" <<'DICT'
"4:info"
"6:length"
"4:name"
"12:piece length"
"6:pieces"
"5:files"
"4:path"
"4:attr"
"12:symlink path"
"9:file tree"
"12:meta version"
"11:pieces root"
"12:piece layers"
"13:announce-list"
"8:url-list"
"7:private"
"0:"
"i16384e"
"i2e"
"urn:btih:"
"urn:btmh:1220"
"&xt="
"&x.pe="
"&so="
DICT

# Peer wire: flags (geometry, handshake first, tight limits), chunk count and sizes, then the stream.
# Geometry 2 has 16 pieces of 64 bytes in blocks of 16; geometry 4 is the unit tests' six pieces.
seed "$corpus/WireDecoderFuzz/handshake-and-messages" \
    "\012\003\002\100\377${handshake}\000\000\000\003\005\377\377\000\000\000\005\004\000\000\000\003\000\000\000\015\006\000\000\000\001\000\000\000\020\000\000\000\020\000\000\000\031\007\000\000\000\001\000\000\000\020ABCDEFGHIJKLMNOP\000\000\000\000\000\000\000\024\024\000d1:md6:ut_pexi1eee\000\000\000\003\025xy\000\000\000\003\011\032\341"
seed "$corpus/WireDecoderFuzz/fast-messages" \
    '\004\000\000\000\000\001\000\000\000\000\001\001\000\000\000\001\002\000\000\000\001\016\000\000\000\005\021\000\000\000\005\000\000\000\005\015\000\000\000\002\000\000\000\015\020\000\000\000\001\000\000\100\000\000\000\100\000'
seed "$corpus/WireDecoderFuzz/tight-limits" '\022\001\007\000\000\000\012\024\001d1:ai0ee\000\000\000\005\377abcd'
cat >"$out/wire.dict" <<'DICT'
"\x13BitTorrent protocol"
"\x00\x00\x00\x00"
"\x00\x00\x00\x01"
"\x00\x00\x00\x05"
"\x00\x00\x00\x0d"
"\x00\x00\x40\x09"
DICT

# Peer connection scripts: setup (geometry, our reserved bits, our pieces), limits, more options and
# who dials, then operations (see PeerConnectionFuzz.swift: 1 handshake, 2 peer message, 3 a piece for
# a request, 4 extended, 5 time, 7 choke/unchoke, 9 request, 11 serve, 14 flush...).
seed "$corpus/PeerConnectionFuzz/leecher" \
    '\060\033\277\001\006\002\012\002\002\011\003\000\011\003\001\003\000\000\003\004\000\007\005\012\016'
seed "$corpus/PeerConnectionFuzz/seeder" \
    '\162\033\077\001\006\002\013\002\003\007\001\002\006\001\002\001\013\000\002\006\001\003\000\013\001\016'
seed "$corpus/PeerConnectionFuzz/choke-drops-requests" \
    '\040\033\217\001\004\002\016\377\377\002\002\011\001\000\011\002\000\002\001\003\001\000\005\050\004\010d1:pi1ee\000\016'
seed "$corpus/PeerConnectionFuzz/raw-handshake" \
    '\060\133\077\000\104\023BitTorrent protocol\000\000\000\000\000\020\000\004\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\002\002\002\002\002\002\002\002\002\002\002\002\002\002\002\002\002\002\002\002\000\005\000\000\000\001\017\016'

# Encryption scripts: mode, our padding / 2, chunking, then the initiator's choices (key, its padding,
# torrent and verification, methods, padding, initial payload, plain bytes after it), then damage.
seed "$corpus/EncryptionHandshakeFuzz/plaintext-offered" \
    "\000\010\003\040\100\010\377\000\000\100x\000\003\000\040\000\104${handshake}\005\000\000\000\001\002"
seed "$corpus/EncryptionHandshakeFuzz/rc4-only" '\000\000\000\377\000\000\000\000\000\002\000\000\000\000\000'
seed "$corpus/EncryptionHandshakeFuzz/bad-verification" \
    '\000\000\001\001\377\000\000\000\000\231\003\000\000\000\000\000'
seed "$corpus/EncryptionHandshakeFuzz/damaged" \
    '\000\000\000\377\000\000\000\000\001\003\000\000\000\004abcd\000\000\141\001\000\142\002'
seed "$corpus/EncryptionHandshakeFuzz/raw" '\001\000\000\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020'

# BEP 10 extension handshakes (payloads of extended message 0).
seed "$corpus/ExtensionHandshakeFuzz/full" \
    'd1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e1:pi6881e4:reqqi500e1:v13:Potluck 0.1.06:yourip4:\177\000\000\001e'
seed "$corpus/ExtensionHandshakeFuzz/minimal" 'd1:mdee'
cat >"$out/extension.dict" <<'DICT'
"1:m"
"11:ut_metadata"
"6:ut_pex"
"13:metadata_size"
"4:reqq"
"1:v"
"1:p"
"6:yourip"
"i0e"
"i65535e"
"i4096e"
DICT

# KRPC: BEP 5's example query, and scripts (see KRPCFuzz.swift: 0/1 datagram, 2/3 answer to our last query,
# 4 time, 5 get_peers, 6 announce, 7 bootstrap).
seed "$corpus/KRPCFuzz/ping" 'd1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe'
seed "$corpus/KRPCFuzz/lookup" \
    '\005\003aaaaaaaaaaaaaaaaaaaa\002\001\002\003\004bbbbbbbbbbbbbbbbbbbb\001\001\032\341\004\012\006\032\341\004\100'
cat >"$out/krpc.dict" <<'DICT'
"1:t2:"
"1:y1:q"
"1:y1:r"
"1:y1:e"
"1:q4:ping"
"1:q9:find_node"
"1:q9:get_peers"
"1:q13:announce_peer"
"1:ad2:id20:"
"1:rd2:id20:"
"6:target20:"
"9:info_hash20:"
"5:nodes26:"
"6:nodes638:"
"6:valuesl6:"
"5:token8:"
"4:porti6881e"
"12:implied_porti1e"
"4:wantl2:n42:n6e"
"2:ip6:"
"2:roi1e"
DICT

# BEP 9: a zero first byte for a ut_metadata payload, an odd one for an assembly script (metadata size,
# then operations: 0 add a peer, 2 ask for requests, 3 answer, 4 reject, 5 let time pass; see the harness).
seed "$corpus/MetadataMessageFuzz/request" '\000d8:msg_typei0e5:piecei0ee'
seed "$corpus/MetadataMessageFuzz/reject" '\000d8:msg_typei2e5:piecei3ee'
seed "$corpus/MetadataMessageFuzz/last-data" '\000d8:msg_typei1e5:piecei1e10:total_sizei16390eeabcdef'
seed "$corpus/MetadataMessageFuzz/honest-and-liar" \
    '\001\100\000\000\001\003\000\000\000\002\002\000\003\000\003\001\002\000\003\000\003\001\005\100\002\000\003\000\003\000'
seed "$corpus/MetadataMessageFuzz/claims-size" \
    '\001\000\200\000\000\001\000\001\001\377\000\002\003\002\000\003\000\003\000\002\000\004\000\005\200\002\000'
# Metadata stage scripts: the size (index), then operations (low 3 bits the kind, the next two the peer).
seed "$corpus/MetadataFetchFuzz/one-honest-peer" '\002\000\003\000\001\004\000\001'
seed "$corpus/MetadataFetchFuzz/liar-then-honest" \
    '\004\010\013\000\001\015\000\005\011\001\000\003\000\001\004\000\001\002\036\004\000\001\017\003\001'
cat >"$out/metadata.dict" <<'DICT'
"8:msg_type"
"5:piece"
"10:total_size"
"i0e"
"i1e"
"i2e"
"i16384e"
DICT

# BEP 11: a zero first byte for a ut_pex payload, an odd one for a connect/disconnect script.
seed "$corpus/PexFuzz/added-dropped" \
    '\000d5:added6:\177\000\000\001\032\3417:added.f1:\0227:dropped6:\012\000\000\002\310\325e'
seed "$corpus/PexFuzz/ipv6" \
    '\000d6:added618:\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\001\032\3418:added6.f1:\015e'
seed "$corpus/PexFuzz/churn" '\001\003\005\007\011\170\013\015\003\170\170\017\170'
cat >"$out/pex.dict" <<'DICT'
"5:added"
"7:added.f"
"6:added6"
"8:added6.f"
"7:dropped"
"8:dropped6"
DICT

# Web seed answers: three bytes choose the range (start, length - 1, file length beyond its end), then
# the server's answer to it.
seed "$corpus/WebSeedResponseFuzz/partial" \
    '\012\004\001HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-14/16\r\nContent-Length: 5\r\n\r\nhello'
seed "$corpus/WebSeedResponseFuzz/whole-file" '\000\003\000HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd'
seed "$corpus/WebSeedResponseFuzz/redirect" '\000\000\000HTTP/1.1 302 Found\r\nLocation: ../other/f.bin\r\n\r\n'
seed "$corpus/WebSeedResponseFuzz/busy" '\000\000\000HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Busy\nRetry-After: 7\n\n'
cat >"$out/webseed.dict" <<'DICT'
"HTTP/1.1 206 "
"HTTP/1.1 200 "
"HTTP/1.0 "
"\x0d\x0a"
"Content-Range: bytes "
"Content-Length: "
"Transfer-Encoding: chunked"
"Content-Encoding: gzip"
"Connection: close"
"Connection: keep-alive"
"Location: "
"Retry-After: "
"/*"
DICT

# BEP 14 announces: a zero first byte for a datagram heard, an odd one for a subscription script (see the
# harness: 0 subscribe, 1 unsubscribe, 2/3 let time pass).
seed "$corpus/LocalDiscoveryFuzz/announce" \
    "\000BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: ${hash20//a/01}\r\ncookie: 1f\r\n\r\n\r\n"
seed "$corpus/LocalDiscoveryFuzz/two-torrents-bare-lf" \
    "\000BT-SEARCH * HTTP/1.1\nPORT:1\nINFOHASH: ${hash20//a/02}\ninfohash: ${hash20//a/03}\n\n"
seed "$corpus/LocalDiscoveryFuzz/schedule" '\001\000\001\004\002\010\003\002\377\011\377\003\377\376\005\002\100'
cat >"$out/lsd.dict" <<'DICT'
"BT-SEARCH * HTTP/1.1"
"\x0d\x0a"
"Host: 239.192.152.143:6771"
"Port: "
"Infohash: "
"cookie: "
"0123456789abcdef0123456789abcdef01234567"
DICT

failed=0
summary="$out/long-run.md"
for harness in "${harnesses[@]}"; do
    artifacts="$out/artifacts/$harness"
    mkdir -p "$artifacts" "$corpus/$harness"
    options=(-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/")
    case "$harness" in
        MetainfoFuzz) options+=(-dict="$out/metainfo.dict") ;;
        ExtensionHandshakeFuzz) options+=(-dict="$out/extension.dict") ;;
        WireDecoderFuzz) options+=(-dict="$out/wire.dict") ;;
        KRPCFuzz) options+=(-dict="$out/krpc.dict") ;;
        MetadataMessageFuzz | MetadataFetchFuzz) options+=(-dict="$out/metadata.dict") ;;
        PexFuzz) options+=(-dict="$out/pex.dict") ;;
        WebSeedResponseFuzz) options+=(-dict="$out/webseed.dict") ;;
        LocalDiscoveryFuzz) options+=(-dict="$out/lsd.dict") ;;
    esac
    # Scripts whose cost grows with their length, capped where longer ones reach nothing new (the last
    # -max_len wins). The wire decoder's geometry has 64-byte pieces, so 8 KB holds hundreds of
    # messages; its long run slowed from 9,000 inputs a second to 400 as they grew to 54 KB (25 s from
    # today's corpus: 4,612 a second uncapped, 7,070 capped, the same coverage). ut_pex toggles 128 peers
    # a byte at a time (536 → 678 a second capped at 1 KB). A UDP tracker exchange is a few datagrams.
    # A local discovery announce is at most 1,400 bytes; its long run had slowed to 937 a second as its
    # inputs grew to 21 KB, with no new coverage after the first minute (25 s from its corpus: 2,346
    # a second uncapped, 2,789 capped at 4 KB, the same coverage).
    case "$harness" in
        WireDecoderFuzz) options+=(-max_len=8192) ;;
        PexFuzz) options+=(-max_len=1024) ;;
        UDPTrackerFuzz | LocalDiscoveryFuzz) options+=(-max_len=4096) ;;
    esac
    sittings="$out/$harness.sittings"
    runs_before=0
    seconds_before=0
    if ((jobs > 1)); then
        if ((continuing)); then resume_cut_run "$harness"; else rm -f "$sittings" "$out/$harness".sitting-*.log; fi
        if [[ -e "$sittings" ]]; then
            read -r runs_before seconds_before <<<"$(awk '{ n += $1; t += $2 } END { print n, t }' "$sittings")"
        fi
    fi
    if [[ -n "$runs" ]]; then
        if ((runs_before >= runs)); then
            echo "== $harness already has $runs_before executions"
            continue
        fi
        echo "== fuzzing $harness for $((runs - runs_before)) executions"
        options+=(-runs="$((runs - runs_before))")
        # libFuzzer's fork mode: child processes fuzz from the shared corpus, new inputs are merged back
        # into it, and the executions of all of them count towards N (it stops at the first crash).
        if ((jobs > 1)); then options+=(-fork="$jobs"); fi
    else
        echo "== fuzzing $harness for ${seconds}s"
        options+=(-max_total_time="$seconds")
    fi
    if ! "$out/$harness" "${options[@]}" "$corpus/$harness" 2>"$out/$harness.log"; then
        echo "!! $harness found a crash; see $out/$harness.log and $artifacts/" >&2
        tail -n 40 "$out/$harness.log" >&2
        failed=1
        continue
    fi
    if ((jobs > 1)); then
        # Fork mode ends with "INFO: fuzzed for 10000123 iterations, wrapping up soon", then
        # "INFO: exiting: 0 time: 1234s".
        executions=$(grep -a -o -E 'fuzzed for [0-9]+ iterations' "$out/$harness.log" | tail -n 1 | tr -dc 0-9)
        elapsed=$(grep -a -o -E 'exiting: 0 time: [0-9]+s' "$out/$harness.log" | tail -n 1 | sed 's/.* //; s/s$//')
        executions=$((executions + runs_before))
        elapsed=$((elapsed + seconds_before))
        label="$jobs processes"
        if [[ -e "$sittings" ]]; then label+=", $(($(wc -l <"$sittings") + 1)) sittings"; fi
        echo "$harness: $executions runs in $elapsed s, $label"
        echo "| $harness ($label) | $executions | $elapsed s | $(date -u +%Y-%m-%d) |" >>"$summary"
        continue
    fi
    # libFuzzer's last line: "Done 10000000 runs in 1234 second(s)".
    done_line=$(grep -a -E '^Done [0-9]+ runs in [0-9]+ second' "$out/$harness.log" | tail -n 1)
    echo "$harness: $done_line"
    if [[ -n "$runs" ]]; then
        read -r _ executions _ _ elapsed _ <<<"$done_line"
        echo "| $harness | $executions | $elapsed s | $(date -u +%Y-%m-%d) |" >>"$summary"
    fi
done
exit "$failed"
