"""Shared plumbing for the interop harness tools (Python 3 standard library only).

Every tool follows the same contract: one JSON object on stdout when it is ready (or done), diagnostics
on stderr, children in their own process groups that die with the tool, and no wait without a deadline.
"""

import contextlib
import ctypes
import hashlib
import ipaddress
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
# Every namespace and veth the harness makes carries this prefix, so `netns.py cleanup` can find
# leftovers of a killed run without touching anything else.
NS_PREFIX = "plk-"
VETH_RE = re.compile(r"^plk(\d+)-[rn]$")
# Temporary directories carry this prefix; a stray child (e.g. opentracker after it dropped
# privileges, which clears its parent-death signal) is recognised by it in its command line.
TMP_PREFIX = "potluck-interop-"
# Optional run identifier ([A-Za-z0-9]+), inherited by every process the tools start: it lets a test
# (or `netns.py cleanup --run ID`) find what one run left behind while other runs share the machine.
RUN_ENV = "POTLUCK_INTEROP_RUN"
OWNER_DIR = "/run/potluck-interop"  # OWNER_DIR/plk-N holds the run identifier that created plk-N


def run_id():
    value = os.environ.get(RUN_ENV, "")
    if value and not re.fullmatch(r"[A-Za-z0-9]+", value):
        raise HarnessError(f"{RUN_ENV} must be letters and digits only")
    return value


def run_tmp_prefix(run=None):
    run = run_id() if run is None else run
    return f"{TMP_PREFIX}r{run}." if run else TMP_PREFIX
SUBNET = "10.77"  # 10.77.N.0/24 per namespace: exists only on veths the harness created

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000


class HarnessError(Exception):
    """A failure with a one-line explanation; tools print it and exit with status 1."""


def log(message):
    print(f"[{os.path.basename(sys.argv[0])}] {message}", file=sys.stderr, flush=True)


def emit(obj):
    """The one JSON line a caller waits for."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def _raise_exit(signum, _frame):
    # A second signal must not interrupt the teardown the first one starts (each step has a timeout).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def install_signal_handlers():
    """SIGTERM/SIGINT/SIGHUP unwind the stack, so every `finally` and ExitStack callback runs."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGTERM/SIGINT/SIGHUP while a resource is created and its teardown registered, so a
    signal cannot land between the two; a held signal is handled right after."""
    held = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run_tool(main):
    """Run a tool's main(); HarnessError → status 1 with a message, anything else propagates."""
    install_signal_handlers()
    try:
        sys.exit(main())
    except HarnessError as error:
        log(f"error: {error}")
        sys.exit(1)
    except subprocess.CalledProcessError as error:
        log(f"error: {' '.join(map(str, error.cmd))} failed with status {error.returncode}: "
            f"{(error.stderr or '').strip()}")
        sys.exit(1)


def _child_setup():
    # The child inherits the signal mask spawn() holds; the client must see our SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    # Dies with the harness even if the harness is SIGKILLed (the kernel sends SIGKILL on parent death).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, stack, name=None, **kwargs):
    """Start argv in its own process group and register its teardown on `stack` (an ExitStack)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    with signals_deferred():
        proc = subprocess.Popen(argv, process_group=0, preexec_fn=_child_setup, **kwargs)
        proc.harness_name = name or os.path.basename(argv[0])
        stack.callback(stop_process, proc)
    return proc


def stop_process(proc, grace=5.0):
    """SIGTERM the process group, then SIGKILL it after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while others in its group are not.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


def make_tempdir(stack, label):
    with signals_deferred():
        path = tempfile.mkdtemp(prefix=f"{run_tmp_prefix()}{label}-")
        stack.callback(subprocess.run, ["rm", "-rf", "--one-file-system", path], check=False, timeout=60)
    return path


def wait_until(predicate, timeout, what, interval=0.1, procs=()):
    """Poll predicate() until truthy; fail after `timeout` s, or at once if a watched process died."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                raise HarnessError(f"{proc.harness_name} exited with status {proc.returncode} "
                                   f"while waiting for {what}")
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def serve_until_stdin_closes(procs=(), check=None, interval=1.0):
    """The long-running tools' main loop: return when stdin reaches EOF; fail if a child dies or
    check() raises. Signals interrupt select() through the handlers above."""
    stdin = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([stdin], [], [], interval)
        if readable and not os.read(stdin, 4096):
            return
        for proc in procs:
            if proc.poll() is not None:
                raise HarnessError(f"{proc.harness_name} exited unexpectedly with status {proc.returncode}")
        if check:
            check()


def parse_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise HarnessError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    check_allowed_address(host)  # addresses only: no name lookups, so nothing resolves elsewhere
    return host, int(port)


def check_allowed_address(host):
    """The harness talks only to loopback, to the 10.77.x.y addresses of its own namespaces, and to
    unique-local IPv6 addresses (fd00::/8, never routed beyond a site: the IPv6 DHT lab's)."""
    try:
        addr = ipaddress.ip_address(host or "")
    except ValueError:
        raise HarnessError(f"{host!r} is not an IP address (names are not resolved here)") from None
    if addr.is_loopback or addr in ipaddress.ip_network(f"{SUBNET}.0.0/16") or \
            addr in ipaddress.ip_network("fd00::/8"):
        return
    raise HarnessError(f"{host} is neither loopback, a harness namespace address ({SUBNET}.x.y) "
                       f"nor unique-local IPv6")


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_tcp_udp_port(host="127.0.0.1"):
    """A port free for both TCP and UDP (clients that listen on both, such as libtorrent)."""
    for _ in range(50):
        port = free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((host, port))
                return port
            except OSError:
                continue
    raise HarnessError("no free TCP+UDP port")


def source_address_for(host):
    """The local address the kernel would use to reach host (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return s.getsockname()[0]


# --- torrents (enough bencode to read an info hash and a name without libtorrent) ---

def bdecode(data, i=0):
    """Decode one value at i; returns (value, end). Dict values keep their raw span in '__spans__'."""
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c == b"l":
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            value, i = bdecode(data, i)
            items.append(value)
        return items, i + 1
    if c == b"d":
        i += 1
        result, spans = {}, {}
        while data[i:i + 1] != b"e":
            key, i = bdecode(data, i)
            start = i
            result[key], i = bdecode(data, i)
            spans[key] = (start, i)
        result["__spans__"] = spans
        return result, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        length = int(data[i:colon])
        return data[colon + 1:colon + 1 + length], colon + 1 + length
    raise HarnessError(f"not bencode at offset {i}")


def torrent_summary(path):
    """v1 info hash (hex, or None for a v2-only torrent), v2 info hash (hex or None), name."""
    with open(path, "rb") as f:
        data = f.read()
    top, _ = bdecode(data)
    if b"info" not in top:
        raise HarnessError(f"{path}: no info dictionary")
    start, end = top["__spans__"][b"info"]
    info = top[b"info"]
    raw = data[start:end]
    v1 = hashlib.sha1(raw).hexdigest() if b"pieces" in info else None
    v2 = hashlib.sha256(raw).hexdigest() if info.get(b"meta version") == 2 else None
    return {"infohash_v1": v1, "infohash_v2": v2, "name": info[b"name"].decode("utf-8", "replace")}


def check_torrent_endpoints(path):
    """Refuse a torrent whose trackers or web seeds are outside loopback and the harness namespaces:
    the clients would contact them."""
    with open(path, "rb") as f:
        top, _ = bdecode(f.read())
    urls = [top.get(b"announce", b"")]
    for tier in top.get(b"announce-list", []):
        urls += tier if isinstance(tier, list) else []
    for key in (b"url-list", b"httpseeds"):
        value = top.get(key, [])
        urls += [value] if isinstance(value, bytes) else value
    for url in urls:
        if not isinstance(url, bytes) or not url:
            continue
        host = urllib.parse.urlsplit(url.decode("utf-8", "replace")).hostname or ""
        try:
            check_allowed_address(host)
        except HarnessError:
            raise HarnessError(f"{path} points clients at {url.decode('utf-8', 'replace')}: only loopback "
                               f"and {SUBNET}.x.y addresses are allowed") from None


# --- tracker announces (used to feed peers to clients that only learn peers from trackers) ---

def _compact_peers(blob):
    return [f"{socket.inet_ntoa(blob[i:i + 4])}:{struct.unpack('>H', blob[i + 4:i + 6])[0]}"
            for i in range(0, len(blob) - len(blob) % 6, 6)]


def announce(url, infohash_hex, port, source=None, left=0, event="started", timeout=5.0):
    """One announce to an http:// or udp:// tracker, from `source` (local address) if given, as a peer
    listening on `port`. Returns {"peers": [...], "interval": n} or {"failure": reason}."""
    parsed = urllib.parse.urlsplit(url)
    check_allowed_address(parsed.hostname)
    infohash = bytes.fromhex(infohash_hex)
    peer_id = b"-PLKHRN-" + os.urandom(6).hex().encode()[:12]
    if parsed.scheme == "http":
        fields = {"info_hash": infohash, "peer_id": peer_id, "port": port, "uploaded": 0,
                  "downloaded": 0, "left": left, "compact": 1, "numwant": 200}
        if event != "none":
            fields["event"] = event
        # %20, not "+", for a 0x20 byte: opentracker does not read "+" as a space, so an info hash
        # holding that byte (about one in thirteen) was refused as not whitelisted.
        query = urllib.parse.urlencode(fields, quote_via=urllib.parse.quote)
        sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout,
                                        source_address=(source, 0) if source else None)
        with sock:
            target = f"{parsed.path or '/announce'}?{query}"
            sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {parsed.netloc}\r\n\r\n".encode())
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if not body.startswith(b"d"):
            return {"failure": f"{status}: {body[:200].decode('latin-1')}"}
        reply, _ = bdecode(body)
        if b"failure reason" in reply:
            return {"failure": reply[b"failure reason"].decode("latin-1")}
        peers = reply.get(b"peers", b"")
        return {"interval": reply.get(b"interval"),
                "peers": _compact_peers(peers) if isinstance(peers, bytes) else
                [f"{p[b'ip'].decode()}:{p[b'port']}" for p in peers]}
    if parsed.scheme == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            if source:
                sock.bind((source, 0))
            sock.connect((parsed.hostname, parsed.port))
            txn = struct.unpack(">I", os.urandom(4))[0]
            sock.send(struct.pack(">QII", 0x41727101980, 0, txn))  # BEP 15 connect
            reply = sock.recv(2048)
            action, rtxn = struct.unpack(">II", reply[:8])
            if action == 3:
                return {"failure": reply[8:].decode("latin-1")}
            if action != 0 or rtxn != txn:
                raise HarnessError(f"bad UDP connect reply from {url}")
            connection_id = reply[8:16]
            events = {"none": 0, "completed": 1, "started": 2, "stopped": 3}
            sock.send(connection_id + struct.pack(">II20s20sQQQIIIiH", 1, txn, infohash, peer_id,
                                                  0, left, 0, events[event], 0, 0, 200, port))
            reply = sock.recv(65536)
            action, rtxn = struct.unpack(">II", reply[:8])
            if action == 3:
                return {"failure": reply[8:].decode("latin-1")}
            if action != 1 or rtxn != txn:
                raise HarnessError(f"bad UDP announce reply from {url}")
            if len(reply) < 20:
                # opentracker's refusal of a hash outside its whitelist: a bare 8-byte header.
                return {"failure": "refused: announce reply without body"}
            interval = struct.unpack(">I", reply[8:12])[0]
            return {"interval": interval, "peers": _compact_peers(reply[20:])}
    raise HarnessError(f"unsupported tracker URL {url}")


# --- opentracker (Debian's build: whitelist mode, chroots to its rootdir, drops to _opentracker) ---

def start_opentracker(stack, http_port, udp_port, whitelist, bind="127.0.0.1", timeout=30.0):
    """Start opentracker listening on bind:http_port (TCP) and bind:udp_port (UDP); return the URLs
    once it answers announces for the first whitelisted hash. `bind` may list several addresses."""
    if not whitelist:
        raise HarnessError("opentracker needs at least one whitelisted info hash")
    for h in whitelist:
        if not re.fullmatch(r"[0-9a-fA-F]{40}", h):
            raise HarnessError(f"not a 40-hex-digit v1 info hash: {h!r}")
    binds = [bind] if isinstance(bind, str) else list(bind)
    root = make_tempdir(stack, "tracker")
    os.chmod(root, 0o755)  # opentracker reads the whitelist after dropping to _opentracker
    with open(os.path.join(root, "whitelist.txt"), "w") as f:
        f.write("".join(h.lower() + "\n" for h in whitelist))
    config = os.path.join(root, "opentracker.conf")
    with open(config, "w") as f:
        # The whitelist path is resolved inside the chroot.
        f.write(f"tracker.rootdir {root}\naccess.whitelist /whitelist.txt\n")
    argv = ["/usr/bin/opentracker", "-f", config]
    for address in binds:
        check_allowed_address(address)
        argv += ["-i", address, "-p", str(http_port), "-P", str(udp_port)]  # -i applies to the next -p/-P
    # Its messages go to a file, not a pipe: a pipe nobody drains would stall it on a long run.
    log_path = os.path.join(root, "opentracker.log")
    with open(log_path, "wb") as log_file:
        proc = spawn(argv, stack, name="opentracker", stdout=subprocess.DEVNULL, stderr=log_file, cwd=root)
    urls = {"http": f"http://{binds[0]}:{http_port}/announce", "udp": f"udp://{binds[0]}:{udp_port}/announce"}

    def answers():
        # Ready means the whitelist is loaded, which opentracker does in a thread of its own after it
        # starts answering: a "started" announce must be accepted ("stopped" ones never check the
        # whitelist). The probe peer is withdrawn at once so no client is sent to it.
        try:
            for url in (urls["http"], urls["udp"]):
                if "peers" not in announce(url, whitelist[0], 1, event="started", timeout=1.0):
                    return False
            announce(urls["http"], whitelist[0], 1, event="stopped", timeout=1.0)
            return True
        except OSError:
            return False
    try:
        wait_until(answers, timeout, "opentracker to answer", interval=0.2, procs=[proc])
    except HarnessError as error:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise HarnessError(f"{error}: {f.read().strip()[-500:]}") from None
        raise
    return proc, urls


# --- network namespaces ---

def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=20)


def netns_names():
    out = ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _used_indexes():
    used = set()
    for name in netns_names():
        if name.startswith(NS_PREFIX) and name[len(NS_PREFIX):].isdigit():
            used.add(int(name[len(NS_PREFIX):]))
    for line in ip("-o", "-4", "addr").stdout.splitlines():
        m = re.search(rf"inet {re.escape(SUBNET)}\.(\d+)\.", line)
        if m:
            used.add(int(m.group(1)))
    for line in ip("-o", "link").stdout.splitlines():
        m = re.search(r"^\d+: (plk(\d+)-[rn])[@:]", line)
        if m:
            used.add(int(m.group(2)))
    return used


def netns_create(extra_root_addresses=0):
    """A fresh namespace plk-N with veth plkN-n (10.77.N.2/24, inside) paired to plkN-r in the root
    namespace (10.77.N.1/24, plus 10.77.N.101... if asked: distinct addresses for clients that keep one
    peer per IP). Returns a description; the caller must netns_delete() it."""
    used = _used_indexes()  # once: `ip netns add` below is what claims an index, races included
    for index in range(1, 255):
        if index in used:
            continue
        name = f"{NS_PREFIX}{index}"
        if ip("netns", "add", name, check=False).returncode != 0:
            continue  # lost a race with another harness run: try the next index
        try:
            os.makedirs(OWNER_DIR, exist_ok=True)
            with open(os.path.join(OWNER_DIR, name), "w") as f:
                f.write(run_id())
            return _netns_configure(index, name, extra_root_addresses)
        except BaseException:
            netns_delete(name)
            raise
    raise HarnessError("no free harness namespace index (1..254)")


def _netns_configure(index, name, extra_root_addresses):
    root_if, ns_if = f"plk{index}-r", f"plk{index}-n"
    net = f"{SUBNET}.{index}"
    ip("link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", name)
    # No IPv6 link-local addresses: nothing is sent on the veths but what the tests send.
    ip("link", "set", root_if, "addrgenmode", "none")
    ip("-n", name, "link", "set", ns_if, "addrgenmode", "none")
    root_addrs = [f"{net}.1"] + [f"{net}.{101 + i}" for i in range(extra_root_addresses)]
    for address in root_addrs:
        ip("addr", "add", f"{address}/24", "dev", root_if)
    ip("-n", name, "addr", "add", f"{net}.2/24", "dev", ns_if)
    ip("link", "set", root_if, "up")
    ip("-n", name, "link", "set", ns_if, "up")
    ip("-n", name, "link", "set", "lo", "up")
    return {"netns": name, "index": index, "ns_address": f"{net}.2", "root_address": root_addrs[0],
            "root_addresses": root_addrs, "root_veth": root_if, "ns_veth": ns_if}


def netns_delete(name):
    """Kill whatever still runs inside, then delete the namespace (its veth pair goes with it)."""
    pids = ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", name, check=False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(OWNER_DIR, name))
    m = re.fullmatch(rf"{re.escape(NS_PREFIX)}(\d+)", name)
    if m:
        ip("link", "del", f"plk{m.group(1)}-r", check=False)


def netns_owner(name):
    """The run identifier that created a harness namespace ("" if none, None if unknown)."""
    try:
        with open(os.path.join(OWNER_DIR, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def in_netns(name):
    """Run the body with this thread in namespace `name`; sockets made there stay there."""
    with open("/proc/thread-self/ns/net") as original, open(f"/run/netns/{name}") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise HarnessError(f"setns({name}): {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc.setns(original.fileno(), CLONE_NEWNET) != 0:
                # Continuing in the wrong namespace would be worse than dying.
                os._exit(70)


def process_cpu_seconds(pid):
    """User+system CPU of a live process and its reaped children, from /proc (clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
