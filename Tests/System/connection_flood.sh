#!/usr/bin/env bash
# 5,000 connection attempts at once, from ten network namespaces, against `potluck seed` held to
# `ulimit -n 256` while a leecher downloads from it (#16): the seeder refuses what it cannot hold, says so
# in a line a second at most (even with --verbose, which logs each peer event), goes on serving the
# leecher it has, and its memory stays inside its budgets (receive buffers, upload cache, a few KiB per
# connection). Half of the flood introduces itself with a handshake for the seeded torrent and then says
# nothing; the other half says nothing at all. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    echo "skipped: needs root and ip (network namespaces)"
    exit 0
fi
potluck="${POTLUCK:-$PWD/.build/debug/potluck}"
netns=(/usr/bin/python3 "$PWD/Tests/Interop/netns.py")
work=$(mktemp -d)
seeder=""
leecher=""
namespaces=()
roots=()
cleanup() {
    [ -n "$seeder" ] && kill "$seeder" 2>/dev/null
    [ -n "$leecher" ] && kill "$leecher" 2>/dev/null
    [ "${#namespaces[@]}" -gt 0 ] && "${netns[@]}" delete "${namespaces[@]}" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
    echo "✘ $1"
    failures=$((failures + 1))
}

mkdir -p "$work/data" "$work/out"
head -c $((48 << 20)) /dev/urandom >"$work/data/big.bin"
"$potluck" create "$work/data/big.bin" -o "$work/big.torrent" >/dev/null 2>&1
infohash=$("$potluck" info "$work/big.torrent" | awk '/infohash v1:/ { print $3 }')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])')

bash -c 'ulimit -n 256 && exec "$@"' _ "$potluck" seed "$work/big.torrent" --data "$work/data" \
    --listen "0.0.0.0:$port" --no-dht --no-lsd --quiet --verbose >"$work/seed.log" 2>&1 &
seeder=$!
sleep 2
# The leecher is held to 3 MB/s, so it is still downloading when the flood comes and after it goes.
"$potluck" download "$work/big.torrent" -o "$work/out" --peer "127.0.0.1:$port" --no-trackers --no-dht \
    --no-lsd --max-download-rate 3M --quiet >"$work/leech.log" 2>&1 &
leecher=$!
sleep 3

for _ in $(seq 10); do
    created=$("${netns[@]}" create)
    namespaces+=("$(python3 -c 'import json, sys; print(json.load(sys.stdin)["netns"])' <<<"$created")")
    roots+=("$(python3 -c 'import json, sys; print(json.load(sys.stdin)["root_address"])' <<<"$created")")
done
cat >"$work/flood.py" <<'EOF'
import os, socket, sys, time
host, port, count, hold, infohash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
handshake = b"\x13BitTorrent protocol" + bytes(8) + bytes.fromhex(infohash) + b"-FL0001-" + os.urandom(12)
sockets = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    sockets.append(s)
time.sleep(1)
for index, s in enumerate(sockets):
    if index % 2 == 0:
        try:
            s.send(handshake)
        except OSError:
            pass
time.sleep(hold)
EOF
blocks() { stat -c %b "$work/out/big.bin" 2>/dev/null || echo 0; }
rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$seeder/status"; }
before=$(blocks)
floods=()
for index in "${!namespaces[@]}"; do
    ip netns exec "${namespaces[$index]}" python3 "$work/flood.py" "${roots[$index]}" "$port" 500 6 "$infohash" &
    floods+=($!)
done
peak=0
peak_descriptors=0
for _ in $(seq 16); do
    sleep 0.5
    kib=$(rss_anon)
    [ "$kib" -gt "$peak" ] && peak=$kib
    descriptors=$(ls "/proc/$seeder/fd" | wc -l)
    [ "$descriptors" -gt "$peak_descriptors" ] && peak_descriptors=$descriptors
done
during=$(blocks)
wait "${floods[@]}" || true

if timeout 120 bash -c "while kill -0 $leecher 2>/dev/null; do sleep 0.5; done"; then
    wait "$leecher" && status=0 || status=$?
    leecher=""
else
    status=timeout
fi
if [ "$status" = 0 ] && cmp -s "$work/out/big.bin" "$work/data/big.bin"; then
    echo "✔ the leecher got every byte"
else
    fail "the leecher ended with $status:"
    tail -5 "$work/leech.log"
fi
# The flood reached the seeder, which refused what it could not hold (64 peers per torrent, 256
# descriptors) in a line a second at most: the first refusal, then how many more.
refused=$(awk '/refused an incoming connection:/ { n += 1 } /^refused [0-9]+ more incoming/ { n += $2 } END { print n + 0 }' "$work/seed.log")
refusal_lines=$(grep -c "^refused" "$work/seed.log" || true)
if [ "$refused" -ge 1000 ] && [ "$refusal_lines" -le 30 ]; then
    echo "✔ $refused connections refused in $refusal_lines log lines; $peak_descriptors descriptors at most"
else
    fail "$refused connections refused in $refusal_lines log lines ($peak_descriptors descriptors at most)"
fi
if [ "$during" -gt "$before" ]; then
    echo "✔ served during the flood ($(((during - before) / 2048)) MiB written by the leecher)"
else
    fail "the leecher got nothing during the flood ($before → $during blocks)"
fi
# Budgets: receive buffers (16 MiB per reactor at most), the upload cache (4 MiB per peer served) and
# a few KiB per connection held: far below 128 MiB.
if [ "$peak" -lt $((128 << 10)) ]; then
    echo "✔ memory during the flood: RssAnon at most $((peak >> 10)) MiB"
else
    fail "RssAnon reached $((peak >> 10)) MiB during the flood"
fi
repeated=$(grep "said once" "$work/seed.log" | sort | uniq -d || true)
if [ -z "$repeated" ]; then
    echo "✔ each other refusal was said once: $(grep -c "said once" "$work/seed.log" || true) reasons"
else
    fail "said more than once: $repeated"
fi
kill -INT "$seeder"
wait "$seeder" && status=0 || status=$?
seeder=""
if [ "$status" -eq 130 ]; then
    echo "✔ the seeder stopped cleanly after the flood"
else
    fail "the seeder ended with status $status after Ctrl-C, not 130:"
    tail -10 "$work/seed.log"
fi
[ -n "${FLOOD_DEBUG:-}" ] && cat "$work/seed.log"
[ "$failures" -eq 0 ]
