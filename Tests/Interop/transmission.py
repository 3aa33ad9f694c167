#!/usr/bin/python3
"""Drive a real transmission-daemon (Debian's Transmission 3.00) inside a network namespace (root only).

Transmission 3.00 ignores peers at 127.x and keeps one peer per IP, so it always runs in a namespace
plk-N the tool creates (see netns.py): it listens on 10.77.N.2:51413, the root namespace reaches it
from 10.77.N.1. Its RPC listens on the namespace's own loopback (127.0.0.1:9091 there), which the tool
reaches by entering the namespace; DHT, PEX, LPD, uTP and port forwarding are off, so it talks to
nothing but the harness. Its configuration lives in a temporary directory.

  seed FILE DATA_DIR [--client-addresses K] [--timeout S]
      → {"peer": "10.77.N.2:51413", "netns": "plk-N", "root_address": "10.77.N.1",
         "client_addresses": ["10.77.N.101", ...], "pid": n}
        once its RPC reports the torrent 100 % verified and seeding; then runs until stdin closes or
        SIGTERM/SIGINT, and deletes the daemon, the namespace and the temporary directory.
        Transmission 3.00 remembers peers by IP address only, and once a peer from an address has
        completed it drops every later connection from that address as "another seed". So give each
        downloader its own source address: `--bind` one of client_addresses (all on the root-side
        veth) per download; 10.77.N.1 is the default source for the first.
  download FILE OUT_DIR --peer HOST:PORT... [--timeout S] [--netns NAME]
      → {"complete": true, "seconds", "bytes", "cpu_seconds", "corrupt_bytes", "netns"}; exit 0
        only when Transmission reports every byte downloaded and verified.
        Transmission has no RPC to add a peer, so the tool runs its own opentracker on 10.77.N.1,
        announces each peer there from the peer's own address (the tracker records the source
        address) and gives Transmission that tracker. So each HOST must be an address of the
        namespace's root-side veth: 10.77.N.1 or an extra 10.77.N.101.. address. So: make a
        namespace with `netns.py create --root-addresses K`, start the peers listening on its
        root-side addresses (one peer per address: Transmission keeps one peer per IP), then run
        this with those peers; the namespace is taken from the peers' addresses (or --netns NAME),
        must not run anything else, and is left in place for `netns.py delete`.
        cpu_seconds is the daemon's user+system CPU. --progress FILE appends a line
        "MONOTONIC_SECONDS VERIFIED_BYTES" (Transmission's haveValid) at each poll (about 100 ms).

On a shaped benchmark link (linknet.py), in a namespace the caller made, with an address of its own:
  seed FILE DATA_DIR --netns NAME --bind ADDR     → as above, "peer": "ADDR:51413", no client_addresses;
                                                    the namespace is left in place
  download FILE OUT_DIR --netns NAME --bind ADDR --tracker URL
      → as above; Transmission finds its peers on the tracker (which they announced to themselves).

DATA_DIR / OUT_DIR is the directory that holds the torrent's top-level file or folder.
Exit status: 0 success, 1 failure (message on stderr), 2 usage error, 128+N killed by signal N.
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HarnessError  # noqa: E402

PEER_PORT = 51413  # the namespace is private, so the usual port is always free
RPC_PORT = 9091
# torrent-get "status" values in Transmission 3.00's RPC
STATUS = {0: "stopped", 1: "check-wait", 2: "checking", 3: "download-wait", 4: "downloading",
          5: "seed-wait", 6: "seeding"}


class RPC:
    """Transmission's JSON RPC over a socket opened inside the daemon's namespace."""

    def __init__(self, netns, port=RPC_PORT):
        self.netns, self.port, self.session_id = netns, port, ""

    def call(self, method, **arguments):
        body = json.dumps({"method": method, "arguments": arguments})
        for _ in range(2):  # the first request only learns the X-Transmission-Session-Id
            with common.in_netns(self.netns):
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.sock = sock
            try:
                conn.request("POST", "/transmission/rpc", body,
                             {"X-Transmission-Session-Id": self.session_id,
                              "Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
            finally:
                conn.close()
            if response.status == 409:
                self.session_id = response.getheader("X-Transmission-Session-Id", "")
                continue
            if response.status != 200:
                raise HarnessError(f"Transmission RPC {method}: HTTP {response.status}")
            reply = json.loads(payload)
            if reply.get("result") != "success":
                raise HarnessError(f"Transmission RPC {method}: {reply.get('result')}")
            return reply.get("arguments", {})
        raise HarnessError("Transmission RPC kept refusing the session id")

    def answers(self):
        try:
            return bool(self.call("session-get"))
        except (OSError, http.client.HTTPException):
            return False


def write_settings(config_dir, ns_address, download_dir):
    settings = {
        "dht-enabled": False, "pex-enabled": False, "lpd-enabled": False, "utp-enabled": False,
        "port-forwarding-enabled": False, "blocklist-enabled": False,
        "peer-port": PEER_PORT, "peer-port-random-on-start": False,
        "bind-address-ipv4": ns_address, "bind-address-ipv6": "::1",
        "rpc-enabled": True, "rpc-bind-address": "127.0.0.1", "rpc-port": RPC_PORT,
        "rpc-authentication-required": False, "rpc-whitelist-enabled": False,
        "rpc-host-whitelist-enabled": False,
        "download-dir": download_dir, "incomplete-dir-enabled": False, "watch-dir-enabled": False,
        "rename-partial-files": False, "start-added-torrents": False,
        "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
        "speed-limit-up-enabled": False, "speed-limit-down-enabled": False, "alt-speed-enabled": False,
        "encryption": 0,  # prefer plain: the cheapest for the peers under test, still accepts both
        "message-level": 1,  # errors only
        "scrape-paused-torrents-enabled": False, "queue-stalled-enabled": False,
        "download-queue-enabled": False, "seed-queue-enabled": False,
        "peer-limit-global": 500, "peer-limit-per-torrent": 100, "upload-slots-per-torrent": 50,
    }
    with open(os.path.join(config_dir, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)


def start_daemon(stack, ns, download_dir):
    """transmission-daemon in the foreground inside ns, with its RPC answering."""
    config_dir = common.make_tempdir(stack, "transmission")
    write_settings(config_dir, ns["ns_address"], download_dir)
    proc = common.spawn(["ip", "netns", "exec", ns["netns"], "/usr/bin/transmission-daemon", "-f",
                         "-g", config_dir], stack, name="transmission-daemon",
                        stdout=sys.stderr, stderr=sys.stderr)
    rpc = RPC(ns["netns"])
    common.wait_until(rpc.answers, 20, "transmission-daemon's RPC", interval=0.2, procs=[proc])
    return proc, rpc


def add_torrent(rpc, path, download_dir):
    with open(path, "rb") as f:
        metainfo = base64.b64encode(f.read()).decode()
    added = rpc.call("torrent-add", metainfo=metainfo, paused=True,
                     **{"download-dir": os.path.abspath(download_dir)})
    torrent = added.get("torrent-added") or added.get("torrent-duplicate")
    if not torrent:
        raise HarnessError(f"Transmission did not add {path}: {added}")
    return torrent["id"]


FIELDS = ["status", "percentDone", "error", "errorString", "haveValid", "sizeWhenDone",
          "leftUntilDone", "downloadedEver", "corruptEver", "peersConnected", "trackerStats"]


def get(rpc, torrent_id):
    torrents = rpc.call("torrent-get", ids=[torrent_id], fields=FIELDS)["torrents"]
    if not torrents:
        raise HarnessError("Transmission lost the torrent")
    t = torrents[0]
    if t["error"] in (3,):  # TR_STAT_LOCAL_ERROR: missing files, disk errors
        raise HarnessError(f"Transmission: {t['errorString']}")
    return t


def make_namespace(stack, extra_root_addresses=0):
    with common.signals_deferred():
        ns = common.netns_create(extra_root_addresses)
        stack.callback(common.netns_delete, ns["netns"])
    return ns


def given_namespace(args):
    """--netns NAME --bind ADDR: an existing harness namespace (a linknet.py peer) and its address."""
    if not args.netns or not args.bind:
        raise HarnessError("--netns and --bind go together")
    common.check_allowed_address(args.bind)
    if args.netns not in common.netns_names() or not args.netns.startswith(common.NS_PREFIX):
        raise HarnessError(f"{args.netns} is not an existing harness namespace")
    return {"netns": args.netns, "ns_address": args.bind, "root_address": None, "root_addresses": []}


def cmd_seed(args):
    common.check_torrent_endpoints(args.file)
    with contextlib.ExitStack() as stack:
        if args.netns or args.bind:
            ns = given_namespace(args)
        else:
            ns = make_namespace(stack, args.client_addresses)
        proc, rpc = start_daemon(stack, ns, os.path.abspath(args.data_dir))
        torrent_id = add_torrent(rpc, args.file, args.data_dir)
        # An added torrent is hash-checked before it starts; only then does it know what it has.
        rpc.call("torrent-verify", ids=[torrent_id])
        rpc.call("torrent-start-now", ids=[torrent_id])

        def seeding():
            t = get(rpc, torrent_id)
            if t["status"] == 4 and t["haveValid"] < t["sizeWhenDone"]:
                raise HarnessError(f"data in {args.data_dir} is incomplete: Transmission verified "
                                   f"{t['haveValid']} of {t['sizeWhenDone']} bytes")
            return t["status"] == 6 and t["percentDone"] == 1 and t["haveValid"] == t["sizeWhenDone"]
        common.wait_until(seeding, args.timeout, "Transmission to verify and seed", interval=0.2,
                          procs=[proc])
        common.emit({"peer": f"{ns['ns_address']}:{PEER_PORT}", "netns": ns["netns"],
                     "root_address": ns["root_address"], "client_addresses": ns["root_addresses"][1:],
                     "pid": proc.pid})
        common.serve_until_stdin_closes([proc], check=lambda: get(rpc, torrent_id))
        common.log("stdin closed; stopping Transmission and deleting its namespace")
    return 0


def namespace_for(name, peers):
    """The namespace to download in: --netns, or the one whose root-side veth holds the peers."""
    if not name:
        m = common.re.fullmatch(rf"{common.re.escape(common.SUBNET)}\.(\d+)\.\d+", peers[0][0])
        if not m:
            raise HarnessError(f"peer {peers[0][0]} is not on a harness veth: Transmission ignores 127.x "
                               "peers; see --help")
        name = f"{common.NS_PREFIX}{m.group(1)}"
    m = common.re.fullmatch(rf"{common.NS_PREFIX}(\d+)", name)
    if not m or name not in common.netns_names():
        raise HarnessError(f"{name} is not an existing harness namespace (make one with netns.py create)")
    if common.ip("netns", "pids", name).stdout.split():
        # A second daemon there would collide on its peer and RPC ports.
        raise HarnessError(f"namespace {name} already runs processes; give the download its own")
    index = int(m.group(1))
    net = f"{common.SUBNET}.{index}"
    root_addrs = [line.split()[3].split("/")[0] for line in
                  common.ip("-o", "-4", "addr", "show", "dev", f"plk{index}-r").stdout.splitlines()]
    return {"netns": name, "index": index, "ns_address": f"{net}.2", "root_address": f"{net}.1",
            "root_addresses": root_addrs}


def cmd_download(args):
    peers = [common.parse_hostport(p) for p in args.peer]
    summary = common.torrent_summary(args.file)
    common.check_torrent_endpoints(args.file)
    if not summary["infohash_v1"]:
        raise HarnessError("Transmission 3.00 handles v1 (or hybrid) torrents only")
    if args.tracker:
        return download_via_tracker(args, summary)
    if not peers:
        raise HarnessError("give --peer HOST:PORT (or --tracker URL with --netns and --bind)")
    with contextlib.ExitStack() as stack:
        ns = namespace_for(args.netns, peers)
        for host, _ in peers:
            if host not in ns["root_addresses"]:
                raise HarnessError(
                    f"peer {host} is not reachable by Transmission in {ns['netns']}: use one of "
                    f"{', '.join(ns['root_addresses'])} (see --help)")
        if len({host for host, _ in peers}) < len(peers):
            common.log("warning: Transmission keeps one peer per IP; peers sharing an address collapse")
        tracker_proc, urls = common.start_opentracker(
            stack, common.free_port(ns["root_address"]),
            common.free_port(ns["root_address"], socket.SOCK_DGRAM), [summary["infohash_v1"]],
            bind=ns["root_address"])
        for host, port in peers:
            reply = common.announce(urls["http"], summary["infohash_v1"], port, source=host, left=0)
            if "failure" in reply:
                raise HarnessError(f"opentracker refused the announce for {host}:{port}: {reply['failure']}")
        os.makedirs(args.out_dir, exist_ok=True)
        proc, rpc = start_daemon(stack, ns, os.path.abspath(args.out_dir))
        torrent_id = add_torrent(rpc, args.file, args.out_dir)
        rpc.call("torrent-set", ids=[torrent_id], trackerAdd=[urls["http"]])
        start = time.monotonic()
        rpc.call("torrent-start-now", ids=[torrent_id])

        progress = open(args.progress, "a", buffering=1) if args.progress else None

        def complete():
            t = get(rpc, torrent_id)
            if progress:
                progress.write(f"{time.monotonic():.3f} {t['haveValid']}\n")
            return t["leftUntilDone"] == 0 and t["haveValid"] == t["sizeWhenDone"] and t
        try:
            t = common.wait_until(complete, args.timeout, "Transmission to finish", interval=0.1,
                                  procs=[proc, tracker_proc])
        except HarnessError:
            t = get(rpc, torrent_id)
            common.emit({"complete": False, "have_valid": t["haveValid"], "size": t["sizeWhenDone"],
                         "peers_connected": t["peersConnected"],
                         "trackers": [s.get("lastAnnounceResult") for s in t["trackerStats"]]})
            raise
        seconds = time.monotonic() - start
        cpu = common.process_cpu_seconds(proc.pid)
        common.emit({"complete": True, "seconds": round(seconds, 3), "bytes": t["downloadedEver"],
                     "cpu_seconds": round(cpu, 3), "corrupt_bytes": t["corruptEver"],
                     "netns": ns["netns"]})
    return 0


def download_via_tracker(args, summary):
    """In a namespace the caller made, finding peers on a tracker they announced to."""
    common.check_allowed_address(common.urllib.parse.urlsplit(args.tracker).hostname)
    with contextlib.ExitStack() as stack:
        ns = given_namespace(args)
        os.makedirs(args.out_dir, exist_ok=True)
        proc, rpc = start_daemon(stack, ns, os.path.abspath(args.out_dir))
        torrent_id = add_torrent(rpc, args.file, args.out_dir)
        rpc.call("torrent-set", ids=[torrent_id], trackerAdd=[args.tracker])
        start = time.monotonic()
        rpc.call("torrent-start-now", ids=[torrent_id])

        progress = open(args.progress, "a", buffering=1) if args.progress else None

        def complete():
            t = get(rpc, torrent_id)
            if progress:
                progress.write(f"{time.monotonic():.3f} {t['haveValid']}\n")
            return t["leftUntilDone"] == 0 and t["haveValid"] == t["sizeWhenDone"] and t
        try:
            t = common.wait_until(complete, args.timeout, "Transmission to finish", interval=0.1, procs=[proc])
        except HarnessError:
            t = get(rpc, torrent_id)
            common.emit({"complete": False, "have_valid": t["haveValid"], "size": t["sizeWhenDone"],
                         "peers_connected": t["peersConnected"],
                         "trackers": [s.get("lastAnnounceResult") for s in t["trackerStats"]]})
            raise
        seconds = time.monotonic() - start
        cpu = common.process_cpu_seconds(proc.pid)
        common.emit({"complete": True, "seconds": round(seconds, 3), "bytes": t["downloadedEver"],
                     "cpu_seconds": round(cpu, 3), "corrupt_bytes": t["corruptEver"], "netns": ns["netns"]})
    return 0


def main():
    parser = argparse.ArgumentParser(prog="transmission.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed", help="seed from transmission-daemon in a fresh namespace",
        description="seed from transmission-daemon in a fresh namespace; output and exit status: transmission.py --help")
    p.add_argument("file", metavar="FILE")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--client-addresses", type=int, default=4, metavar="K",
                   help="extra root-side addresses 10.77.N.101.. for downloaders to --bind (default 4)")
    p.add_argument("--timeout", type=float, default=300, metavar="S", help="limit for the initial check")
    p.add_argument("--netns", metavar="NAME", help="run in this existing harness namespace (with --bind)")
    p.add_argument("--bind", metavar="ADDR", help="listen on this address of --netns")
    p.set_defaults(func=cmd_seed)
    p = sub.add_parser("download", help="download with transmission-daemon in a namespace",
        description="download with transmission-daemon in a namespace; output and exit status: transmission.py --help")
    p.add_argument("file", metavar="FILE")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--peer", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--timeout", type=float, default=300, metavar="S")
    p.add_argument("--netns", metavar="NAME",
                   help="harness namespace to run in (default: the one the peers' addresses belong to)")
    p.add_argument("--tracker", metavar="URL",
                   help="find peers on this tracker instead (with --netns and --bind: a linknet.py peer)")
    p.add_argument("--bind", metavar="ADDR", help="with --tracker: listen on this address of --netns")
    p.add_argument("--progress", metavar="FILE",
                   help="append 'MONOTONIC_SECONDS VERIFIED_BYTES' lines at each poll")
    p.set_defaults(func=cmd_download)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise HarnessError("network namespaces need root")
    for peer in getattr(args, "peer", None) or []:
        common.parse_hostport(peer)  # refuse bad or outside addresses before creating anything
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
