#!/usr/bin/env bash
# scripts/potluck-daemon.service passes `systemd-analyze verify` (directives, values, ExecStart). The
# unit names /usr/local/bin/potluck, where an operator installs it: the check runs on a copy that names
# the binary this tree built, which verify requires to exist.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skipped: systemd-analyze is not installed (Debian's systemd package has it)"
    exit 0
fi
binary=""
for candidate in .build/release/potluck .build/debug/potluck; do
    [ -x "$candidate" ] && binary="$PWD/$candidate" && break
done
if [ -z "$binary" ]; then
    echo "✘ systemd unit: no built potluck binary to point ExecStart at (swift build first)"
    exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sed "s|/usr/local/bin/potluck|$binary|" scripts/potluck-daemon.service >"$scratch/potluck-daemon.service"
if output=$(systemd-analyze verify --man=no "$scratch/potluck-daemon.service" 2>&1) && [ -z "$output" ]; then
    echo "✔ systemd unit: systemd-analyze verify accepts scripts/potluck-daemon.service"
else
    echo "$output"
    echo "✘ systemd unit: systemd-analyze verify reported problems"
    exit 1
fi
