#!/usr/bin/env bash
# Builds the libFuzzer harnesses in Tests/Fuzz with AddressSanitizer and runs each for a while.
#
#   Tests/Fuzz/run.sh [seconds-per-harness]   (default 30)
#
# SwiftPM cannot build libFuzzer binaries, so each module the harness needs is compiled with swiftc
# into .build-fuzz/ (git-ignored) as its own module, in dependency order, then linked with the harness.
# Seed corpora are written here too and grow across runs. Crash inputs are saved under
# .build-fuzz/artifacts/<harness>/; the script exits non-zero if any harness found one.
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.build-fuzz"
cd "$root"
mkdir -p "$out/modules"

swift_flags=(-sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld -package-name potluck -I "$out/modules" -I CSupport/CLibCrypto)

# build_module NAME: compiles Sources/NAME into one object plus a module interface other code can import.
build_module() {
    local name="$1"
    echo "== compiling module $name"
    swiftc "${swift_flags[@]}" -wmo -module-name "$name" -emit-module \
        -emit-module-path "$out/modules/$name.swiftmodule" -c Sources/"$name"/*.swift -o "$out/modules/$name.o"
}

# build_harness NAME MODULES...: links Tests/Fuzz/NAME.swift against the given modules' objects.
build_harness() {
    local name="$1"
    shift
    local objects=()
    for module in "$@"; do objects+=("$out/modules/$module.o"); done
    echo "== linking $name"
    swiftc "${swift_flags[@]}" -module-name "$name" Tests/Fuzz/"$name".swift "${objects[@]}" -lcrypto \
        -o "$out/$name"
}

# seed FILE CONTENT: writes one seed input (printf escapes allowed) if it does not exist yet.
seed() {
    local file="$1"
    mkdir -p "$(dirname "$file")"
    [[ -e "$file" ]] || printf "$2" >"$file"
}

build_module TorrentModel
build_module Bencode
build_module Buffers
build_module Hashing
build_module Metainfo
build_module Tracker
build_harness BencodeFuzz Bencode
build_harness MetainfoFuzz TorrentModel Bencode Buffers Hashing Metainfo
build_harness BuilderFuzz TorrentModel Bencode Buffers Hashing Metainfo
build_harness TrackerResponseFuzz TorrentModel Bencode Tracker
build_harness UDPTrackerFuzz TorrentModel Bencode Tracker

hash20='aaaaaaaaaaaaaaaaaaaa'
hash32='bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
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

failed=0
for harness in BencodeFuzz MetainfoFuzz BuilderFuzz TrackerResponseFuzz UDPTrackerFuzz; do
    artifacts="$out/artifacts/$harness"
    mkdir -p "$artifacts"
    echo "== fuzzing $harness for ${seconds}s"
    dict=()
    [[ "$harness" == MetainfoFuzz ]] && dict=(-dict="$out/metainfo.dict")
    if ! "$out/$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus/$harness" 2>"$out/$harness.log"; then
        echo "!! $harness found a crash; see $out/$harness.log and $artifacts/" >&2
        tail -n 40 "$out/$harness.log" >&2
        failed=1
    else
        grep -E '^stat::number_of_executed_runs|^Done' "$out/$harness.log" || true
    fi
done
exit "$failed"
