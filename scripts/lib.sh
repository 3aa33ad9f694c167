# Shared set-up for scripts/run and scripts/test: Debian packages and the Swift toolchain.
# Safe to run any number of times: it installs only what is missing.

# Debian packages the build, the tests and the benchmarks use.
POTLUCK_PACKAGES=(
    pkg-config liburing-dev libssl-dev openssl  # build: the C edge (io_uring, SHA-1/SHA-256)
    mktorrent transmission-cli python3-libtorrent  # interop: torrents made by other tools
    iproute2 procps                                # system tests: sysctl, network namespaces
    gdb                                            # tests: the stacks of a command killed for hanging
    aria2 transmission-daemon opentracker          # interop harness: real clients and a real tracker
    transmission-common curl python3-pip           # daemon tests: the web client, raw HTTP, a PyPI client
    prometheus                                     # daemon tests: promtool and a real server scrape /metrics
    chromium                                       # daemon tests: the web client in a headless browser
    nginx-light                                    # web seed tests: a real HTTP file server
)

# PyPI packages for Debian's Python (which has python3-libtorrent): module to import, then the package.
POTLUCK_PYTHON_PACKAGES=(
    "transmission_rpc transmission-rpc==7.0.12"    # daemon tests: the client Sonarr-like scripts use
)

ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
            [ -x "$candidate/swift" ] && export PATH="$candidate:$PATH" && break
        done
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "error: Swift 6 is not installed; install a Swift 6.x toolchain for Linux and put it on PATH" >&2
        exit 1
    fi
}

ensure_python_packages() {
    local entry module requirement
    for entry in "$@"; do
        read -r module requirement <<<"$entry"
        /usr/bin/python3 -c "import $module" 2>/dev/null && continue
        echo "==> installing Python package: $requirement"
        /usr/bin/python3 -m pip install -q --break-system-packages --root-user-action=ignore "$requirement"
    done
}

potluck_setup() {
    ensure_packages "${POTLUCK_PACKAGES[@]}"
    ensure_python_packages "${POTLUCK_PYTHON_PACKAGES[@]}"
    ensure_swift
}
