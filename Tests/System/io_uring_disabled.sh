#!/usr/bin/env bash
# When the kernel refuses io_uring, potluck must exit at once with one sentence naming the cause and
# the fix: no crash, no hang. Uses the real sysctl (root only) and restores it whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
setting=/proc/sys/kernel/io_uring_disabled
if [ ! -w "$setting" ]; then
    echo "skipped: $setting is missing or not writable (needs root on Linux 6.6+)"
    exit 0
fi
original=$(cat "$setting")
trap 'echo "$original" > "$setting"' EXIT
echo 2 > "$setting"
set +e
output=$(timeout 20 .build/debug/potluck bench ring --tcp-mib 1 --file-mib 1 2>&1)
status=$?
set -e
echo "$original" > "$setting"
expected="potluck: io_uring is unavailable: io_uring is disabled by the sysctl kernel.io_uring_disabled=2; enable it with \`sysctl -w kernel.io_uring_disabled=0\`."
if [ "$status" -ne 1 ] || [ "$output" != "$expected" ]; then
    echo "expected exit status 1 and: $expected"
    echo "got exit status $status and: $output"
    exit 1
fi
echo "✔ io_uring disabled: clear message, exit status 1"
