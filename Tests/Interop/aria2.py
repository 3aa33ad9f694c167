#!/usr/bin/python3
"""Drive a real aria2c (Debian's aria2 1.36) for interop tests and benchmarks.

aria2c cannot be given peers for a .torrent on its command line and only learns peers from trackers
(DHT, LPD and PEX are off here). So `download --peer` runs a private opentracker, announces each peer to
it from the peer's own address (opentracker records the announcing socket's address) and hands aria2c
that tracker alone (--bt-tracker, with the torrent's own trackers excluded).

  download FILE OUT_DIR --peer HOST:PORT... [--timeout S] [--bind ADDR]
  download FILE OUT_DIR --tracker URL [--timeout S] [--bind ADDR]
      → {"complete": true, "seconds", "bytes", "cpu_seconds"}; exit 0 only when aria2c reports the
        download complete (it hash-checks every piece). bytes is the payload on disk (aria2c does
        not report wire bytes); cpu_seconds is aria2c's user+system CPU.
        HOST may be any address of the root namespace (127.x, a root-side 10.77.N.1/.101..) or
        10.77.N.2 inside a harness namespace plk-N (a Transmission seeder): that peer is announced from
        inside its namespace to the tracker's extra address 10.77.N.1.
        With --tracker, peers must already have announced to that tracker themselves
        (e.g. `lt.py seed --tracker URL`).
  magnet MAGNET OUT_DIR --dht-entry HOST:PORT [--bind ADDR] [--timeout S]
      → {"complete": true, "seconds", "metadata_seconds", "bytes", "cpu_seconds"}: aria2c with its DHT
        on (IPv4 only, a table of its own in a temporary folder), told only the link and one node
        (`dht_lab.py start` makes a lab of them: give --bind its "root_address", where the root
        namespace reaches its nodes), fetches the info dictionary (BEP 9) from the peers
        it finds and then the payload. "metadata_seconds" is when the payload's first file appeared in
        OUT_DIR (aria2c creates it once it has the info dictionary; polled every 10 ms), both counted
        from aria2c's start. Exit 0 only when aria2c reports the download complete.
  seed FILE DATA_DIR [--bind ADDR] [--port P] [--tracker URL]... [--timeout S]
      → {"peer": "ADDR:PORT", "pid": n} once aria2c has hash-checked the data and is seeding; then
        runs until stdin closes or SIGTERM/SIGINT. With --tracker, it announces only there; without,
        to the torrent's own trackers.

DATA_DIR / OUT_DIR is the directory that holds the torrent's top-level file or folder.
Exit status: 0 success, 1 failure (message on stderr), 2 usage error, 128+N killed by signal N.
"""

import argparse
import contextlib
import json
import os
import re
import resource
import secrets
import socket
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HarnessError  # noqa: E402


def base_options():
    """Everything that keeps aria2c talking to the harness only, and quietly."""
    return ["/usr/bin/aria2c", "--no-conf=true", "--enable-dht=false", "--enable-dht6=false",
            "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--disable-ipv6=true",
            "--follow-torrent=false", "--file-allocation=none", "--auto-file-renaming=false",
            "--allow-overwrite=true", "--console-log-level=error", "--summary-interval=0",
            "--show-console-readout=false", "--download-result=hide", "--enable-color=false",
            "--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=10",
            f"--stop-with-process={os.getpid()}"]  # a second guard besides the parent-death signal


def is_root_local(host):
    """True if host is an address of this (root) namespace: a socket can be bound to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, 0))
            return True
        except OSError:
            return False


def namespace_of(host):
    """The harness namespace whose inside address is host, else None."""
    m = re.fullmatch(rf"{re.escape(common.SUBNET)}\.(\d+)\.2", host)
    if m and f"{common.NS_PREFIX}{m.group(1)}" in common.netns_names():
        return f"{common.NS_PREFIX}{m.group(1)}", f"{common.SUBNET}.{m.group(1)}.1"
    return None


def cmd_download(args):
    summary = common.torrent_summary(args.file)
    if not summary["infohash_v1"]:
        raise HarnessError("opentracker here serves v1 info hashes only; make the torrent v1 or hybrid")
    if bool(args.peer) == bool(args.tracker):
        raise HarnessError("give either --peer HOST:PORT... or --tracker URL")
    with contextlib.ExitStack() as stack:
        interface = None
        if args.tracker:
            tracker = args.tracker
            common.check_allowed_address(common.urllib.parse.urlsplit(tracker).hostname)
        else:
            peers = [common.parse_hostport(p) for p in args.peer]
            placed, binds = [], ["127.0.0.1"]
            for host, port in peers:
                common.check_allowed_address(host)
                if is_root_local(host):
                    placed.append((host, port, None))
                elif located := namespace_of(host):
                    placed.append((host, port, located))
                    if located[1] not in binds:
                        binds.append(located[1])
                else:
                    raise HarnessError(f"{host} is neither a local address nor inside a harness namespace")
            _, urls = common.start_opentracker(
                stack, common.free_port(), common.free_port(kind=socket.SOCK_DGRAM),
                [summary["infohash_v1"]], bind=binds)
            tracker = urls["http"]
            http_port = int(tracker.rsplit(":", 1)[1].split("/")[0])
            for host, port, located in placed:
                if located:
                    with common.in_netns(located[0]):
                        reply = common.announce(f"http://{located[1]}:{http_port}/announce",
                                                summary["infohash_v1"], port, source=host)
                else:
                    reply = common.announce(tracker, summary["infohash_v1"], port, source=host)
                if "failure" in reply:
                    raise HarnessError(f"opentracker refused the announce for {host}:{port}: {reply['failure']}")
            sources = {common.source_address_for(host) for host, _, _ in placed}
            if len(sources) == 1:
                interface = sources.pop()  # listen and connect from that address only
        if args.bind:
            common.check_allowed_address(args.bind)
            interface = args.bind
        os.makedirs(args.out_dir, exist_ok=True)
        argv = base_options() + [
            f"--dir={os.path.abspath(args.out_dir)}", "--seed-time=0",
            f"--bt-tracker={tracker}", "--bt-exclude-tracker=*",
            f"--listen-port={common.free_tcp_udp_port(interface or '127.0.0.1')}",
            "--bt-max-peers=0", "--bt-request-peer-speed-limit=100M"]
        if interface:
            argv.append(f"--interface={interface}")
        argv.append(os.path.abspath(args.file))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = common.spawn(argv, stack, name="aria2c", stdout=sys.stderr, stderr=sys.stderr)
        try:
            status = proc.wait(args.timeout)
        except common.subprocess.TimeoutExpired:
            common.emit({"complete": False})
            raise HarnessError(f"aria2c did not finish within {args.timeout:g} s") from None
        seconds = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # aria2c is the only child reaped since
        if status != 0:
            common.emit({"complete": False, "aria2c_status": status})
            raise HarnessError(f"aria2c exited with status {status}")
        total = sum(os.path.getsize(os.path.join(d, f))
                    for d, _, files in os.walk(os.path.join(args.out_dir, summary["name"])) for f in files) \
            if os.path.isdir(os.path.join(args.out_dir, summary["name"])) else \
            os.path.getsize(os.path.join(args.out_dir, summary["name"]))
        common.emit({"complete": True, "seconds": round(seconds, 3), "bytes": total,
                     "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3)})
    return 0


def cmd_magnet(args):
    entry_host, entry_port = common.parse_hostport(args.dht_entry)
    bind = args.bind or "127.0.0.1"
    common.check_allowed_address(bind)
    os.makedirs(args.out_dir, exist_ok=True)
    before_entries = set(os.listdir(args.out_dir))
    with contextlib.ExitStack() as stack:
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="potluck-interop-aria2-"))
        port = common.free_tcp_udp_port(bind)
        argv = [option for option in base_options() if not option.startswith("--enable-dht=")] + [
            "--enable-dht=true", f"--dht-entry-point={entry_host}:{entry_port}",
            f"--dht-listen-port={port}", f"--listen-port={port}", f"--dht-file-path={state}/dht.dat",
            f"--interface={bind}", f"--dir={os.path.abspath(args.out_dir)}", "--seed-time=0",
            "--bt-save-metadata=false", "--bt-max-peers=0", "--bt-request-peer-speed-limit=100M",
            args.magnet]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = common.spawn(argv, stack, name="aria2c", stdout=sys.stderr, stderr=sys.stderr)
        metadata_seconds = None
        deadline = start + args.timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                common.emit({"complete": False, "metadata_seconds": metadata_seconds})
                raise HarnessError(f"aria2c did not finish within {args.timeout:g} s")
            if metadata_seconds is None and any(
                    not name.endswith(".aria2") for name in set(os.listdir(args.out_dir)) - before_entries):
                metadata_seconds = time.monotonic() - start
            time.sleep(0.01)
        seconds = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # aria2c is the only child reaped since
        if proc.returncode != 0:
            common.emit({"complete": False, "aria2c_status": proc.returncode})
            raise HarnessError(f"aria2c exited with status {proc.returncode}")
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(args.out_dir) for f in files)
        common.emit({"complete": True, "seconds": round(seconds, 3),
                     "metadata_seconds": None if metadata_seconds is None else round(metadata_seconds, 3),
                     "bytes": total,
                     "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3)})
    return 0


class AriaRPC:
    def __init__(self, port, secret):
        self.url, self.secret = f"http://127.0.0.1:{port}/jsonrpc", secret

    def call(self, method, *params):
        body = json.dumps({"jsonrpc": "2.0", "id": "h", "method": method,
                           "params": [f"token:{self.secret}", *params]}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        # No proxies: the RPC is on loopback and must never leave it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as response:
            reply = json.load(response)
        if "error" in reply:
            raise HarnessError(f"aria2 RPC {method}: {reply['error'].get('message')}")
        return reply["result"]


def cmd_seed(args):
    common.check_allowed_address(args.bind)
    gid = secrets.token_hex(8)
    secret = secrets.token_hex(16)
    rpc_port = common.free_port()
    port = args.port or common.free_tcp_udp_port(args.bind)
    argv = base_options() + [
        f"--dir={os.path.abspath(args.data_dir)}", "--check-integrity=true", "--bt-seed-unverified=false",
        "--seed-ratio=0.0", f"--listen-port={port}", f"--interface={args.bind}", f"--gid={gid}",
        "--enable-rpc=true", "--rpc-listen-all=false", f"--rpc-listen-port={rpc_port}",
        f"--rpc-secret={secret}"]
    if args.tracker:
        for url in args.tracker:
            common.check_allowed_address(common.urllib.parse.urlsplit(url).hostname)
        argv += [f"--bt-tracker={','.join(args.tracker)}", "--bt-exclude-tracker=*"]
    else:
        common.check_torrent_endpoints(args.file)
    argv.append(os.path.abspath(args.file))
    with contextlib.ExitStack() as stack:
        proc = common.spawn(argv, stack, name="aria2c", stdout=sys.stderr, stderr=sys.stderr)
        rpc = AriaRPC(rpc_port, secret)

        incomplete_polls = [0]

        def seeding():
            try:
                s = rpc.call("aria2.tellStatus", gid, ["status", "seeder", "completedLength", "totalLength",
                                                       "errorMessage", "verifiedLength",
                                                       "verifyIntegrityPending"])
            except OSError:
                return False
            if s["status"] in ("error", "removed", "complete"):
                raise HarnessError(f"aria2c stopped seeding: {s['status']} {s.get('errorMessage', '')}")
            if s["seeder"] == "true" and s["completedLength"] == s["totalLength"]:
                return True
            # Checked (no verification running or queued) yet not a seeder: the data is incomplete.
            # Seen on several polls in a row, so the moment before the check starts does not count.
            checked = s["status"] == "active" and "verifiedLength" not in s and "verifyIntegrityPending" not in s
            incomplete_polls[0] = incomplete_polls[0] + 1 if checked else 0
            if incomplete_polls[0] >= 5:
                raise HarnessError(f"data in {args.data_dir} is incomplete: aria2c has "
                                   f"{s['completedLength']} of {s['totalLength']} bytes")
            return False
        common.wait_until(seeding, args.timeout, "aria2c to check the data and seed", interval=0.2,
                          procs=[proc])
        common.emit({"peer": f"{args.bind}:{port}", "pid": proc.pid})
        common.serve_until_stdin_closes([proc])
        common.log("stdin closed; stopping aria2c")
    return 0


def main():
    parser = argparse.ArgumentParser(prog="aria2.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download", help="download with aria2c",
        description="download with aria2c; output and exit status: aria2.py --help")
    p.add_argument("file", metavar="FILE")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--peer", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--tracker", metavar="URL", help="use this tracker instead of --peer")
    p.add_argument("--bind", metavar="ADDR",
                   help="local address to listen and connect from (default: the one routed to the peers)")
    p.add_argument("--timeout", type=float, default=300, metavar="S")
    p.set_defaults(func=cmd_download)
    p = sub.add_parser("magnet", help="download a magnet link with aria2c, finding peers in a DHT",
        description="download a magnet link with aria2c, finding peers through one DHT node; output and "
                    "exit status: aria2.py --help")
    p.add_argument("magnet", metavar="MAGNET")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--dht-entry", required=True, metavar="HOST:PORT", help="the only DHT node it is told of")
    p.add_argument("--bind", metavar="ADDR",
                   help="address to listen and connect from (default 127.0.0.1; a dht_lab.py lab's root_address)")
    p.add_argument("--timeout", type=float, default=300, metavar="S")
    p.set_defaults(func=cmd_magnet)
    p = sub.add_parser("seed", help="seed with aria2c until stdin closes",
        description="seed with aria2c until stdin closes; output and exit status: aria2.py --help")
    p.add_argument("file", metavar="FILE")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR")
    p.add_argument("--port", type=int, default=0, metavar="P", help="listen port (default: a free one)")
    p.add_argument("--tracker", action="append", default=[], metavar="URL")
    p.add_argument("--timeout", type=float, default=300, metavar="S", help="limit for the initial check")
    p.set_defaults(func=cmd_seed)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
