#!/usr/bin/env bash
# The interop harness drives real libtorrent, Transmission, aria2 and opentracker; its self-tests prove
# that each tool moves byte-identical data and leaves no process or namespace behind. Root only
# (network namespaces); Debian's /usr/bin/python3 is the interpreter that sees python3-libtorrent.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: the interop harness needs root for network namespaces"
    exit 0
fi
for tool in /usr/bin/python3 /usr/bin/aria2c /usr/bin/transmission-daemon /usr/bin/opentracker; do
    if [ ! -x "$tool" ]; then
        echo "✘ interop harness: $tool is missing (scripts/lib.sh installs it)"
        exit 1
    fi
done
# Tools started by this run carry the identifier, so a clean-up after a kill spares other runs.
export POTLUCK_INTEROP_RUN="system${$}${RANDOM}"
# A hard ceiling: the tests take well under two minutes, and every wait inside has its own timeout.
if timeout --kill-after=10 300 /usr/bin/python3 -m unittest discover -s Tests/Interop -p 'test_*.py'; then
    echo "✔ interop harness: libtorrent, Transmission, aria2 and opentracker driven and cleaned up"
else
    status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        # Killed by the ceiling: its tearDowns did not run, so remove what it left for the next run.
        /usr/bin/python3 Tests/Interop/netns.py cleanup --run "$POTLUCK_INTEROP_RUN" >/dev/null 2>&1 || true
    fi
    echo "✘ interop harness self-tests failed (status $status)"
    exit 1
fi
