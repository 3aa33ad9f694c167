#!/usr/bin/env bash
# `potluck seed` of many torrents that runs out of descriptors, threads or locked memory must end with a
# clear error and exit status 1 (never a crash: a double free once aborted it at the descriptor limit),
# and with enough locked memory for its rings but not for registered buffers it must still serve.
# Each resource is exhausted on purpose: `ulimit -n`, RLIMIT_NPROC and RLIMIT_MEMLOCK for an unprivileged
# user (root is exempt from the last two), through setpriv and prlimit. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! command -v prlimit >/dev/null; then
    echo "skipped: needs root, setpriv and prlimit"
    exit 0
fi
potluck="$PWD/.build/debug/potluck"
work=$(mktemp -d)
seeder=""
trap '[ -n "$seeder" ] && kill "$seeder" 2>/dev/null; rm -rf "$work"' EXIT
python3 Tests/Interop/many_torrents.py "$work" --count 40 >/dev/null
# The unprivileged runs read the data and write resume data beside it.
chmod -R a+rwX "$work"
torrents=("$work"/torrents/*.torrent)
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
failures=0

# expect_clean_failure NAME PATTERN COMMAND...: exit status 1, PATTERN in the output, no crash report.
expect_clean_failure() {
    local name="$1" pattern="$2"
    shift 2
    rm -f "$work"/data/.*.potluck-resume
    set +e
    local output
    output=$(timeout 120 "$@" 2>&1)
    local status=$?
    set -e
    if [ "$status" -eq 1 ] && grep -q -- "$pattern" <<<"$output" \
        && ! grep -qE 'double free|Fatal error|Signal [0-9]+|precondition failure' <<<"$output"; then
        echo "✔ $name: exit status 1 and a clear error"
    else
        echo "✘ $name: expected exit status 1 and '$pattern'; got status $status and:"
        grep -v 'failed to suspend' <<<"$output" | head -20
        failures=$((failures + 1))
    fi
}

expect_clean_failure "descriptors (ulimit -n 40)" "file descriptor\|Too many open files" \
    bash -c 'ulimit -n 40 && exec "$@"' _ "$potluck" seed "${torrents[@]}" --data "$work/data" \
    --listen 127.0.0.1:0
expect_clean_failure "threads (RLIMIT_NPROC 2)" "thread" \
    "${as_nobody[@]}" prlimit --nproc=2 "$potluck" seed "${torrents[@]}" --data "$work/data" \
    --listen 127.0.0.1:0
expect_clean_failure "locked memory (RLIMIT_MEMLOCK 0)" "RLIMIT_MEMLOCK" \
    "${as_nobody[@]}" prlimit --memlock=0 "$potluck" seed "${torrents[@]}" --data "$work/data" \
    --listen 127.0.0.1:0

# 1 MiB of locked memory holds the rings but not the registered upload cache: plain reads serve instead.
# The torrents are given as a folder.
rm -f "$work"/data/.*.potluck-resume
mkdir "$work/three"
cp "${torrents[@]:0:3}" "$work/three/"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_nobody[@]}" prlimit --memlock=1048576 "$potluck" seed "$work/three" --data "$work/data" \
    --listen "127.0.0.1:$port" --verbose >"$work/seed.log" 2>&1 &
seeder=$!
if timeout 60 "$potluck" download "${torrents[1]}" -o "$work/out" --peer "127.0.0.1:$port" --no-trackers \
    --quiet && cmp -s "$work/out/t00001.bin" "$work/data/t00001.bin"; then
    echo "✔ locked memory (RLIMIT_MEMLOCK 1 MiB): a folder of torrents served without registered buffers"
else
    echo "✘ locked memory (RLIMIT_MEMLOCK 1 MiB): the download failed or differs"
    failures=$((failures + 1))
fi
kill -INT "$seeder"
set +e
wait "$seeder"
status=$?
set -e
seeder=""
if [ "$status" -ne 130 ]; then
    echo "✘ the seeder ended with status $status after Ctrl-C, not 130:"
    tail -20 "$work/seed.log"
    failures=$((failures + 1))
fi

# A seeder out of descriptors under a flood of connections: it neither spins (the listener stays readable
# while accept fails) nor logs each failure, and it serves again once the flood is gone. Both paths: one
# torrent (the session accepts on its ring) and a folder (the router accepts for all of them).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for torrents in "${torrents[1]}" "$work/three"; do
    rm -f "$work"/data/.*.potluck-resume "$work/flood.log"
    rm -rf "$work/out"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    bash -c 'ulimit -n 40 && exec "$@"' _ "$potluck" seed "$torrents" --data "$work/data" \
        --listen "127.0.0.1:$port" --verbose >"$work/flood.log" 2>&1 &
    seeder=$!
    sleep 2
    # 200 connections held open for 4 s, never saying anything.
    python3 -c '
import socket, sys, time
held = []
for _ in range(200):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
time.sleep(4)
' "$port" &
    flood=$!
    sleep 1.5
    before=$(cpu_ticks "$seeder")
    sleep 2
    after=$(cpu_ticks "$seeder")
    wait "$flood"
    said=$(grep -c "accept: .*said once" "$work/flood.log" || true)
    if [ $((after - before)) -le 50 ] && [ "$said" -ge 1 ] && [ "$said" -le 2 ] \
        && timeout 60 "$potluck" download "${torrents[1]}" -o "$work/out" --peer "127.0.0.1:$port" \
            --no-trackers --quiet && cmp -s "$work/out/t00001.bin" "$work/data/t00001.bin"; then
        echo "✔ descriptor flood ($torrents): no spin ($((after - before)) ticks in 2 s), said once, serves after"
    else
        echo "✘ descriptor flood ($torrents): $((after - before)) CPU ticks in 2 s, $said accept lines; log:"
        tail -20 "$work/flood.log"
        failures=$((failures + 1))
    fi
    kill -INT "$seeder"
    wait "$seeder" || true
    seeder=""
done
[ "$failures" -eq 0 ]
