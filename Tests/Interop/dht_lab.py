#!/usr/bin/python3
"""A private BitTorrent DHT made of libtorrent-rasterbar 2.0 sessions (Debian's python3-libtorrent),
each in a network namespace of its own, and a libtorrent leecher that finds a seeder through it from a
magnet link (root only: it makes namespaces).

Must run under Debian's /usr/bin/python3: that is the interpreter that sees python3-libtorrent.
Each subcommand prints one JSON object on stdout; diagnostics go to stderr.

  start --nodes N [--seed TORRENT DATA_DIR] [--base fd00:0:1::1] [--port P] [--timeout S]
      → {"nodes": ["10.77.A.2:PORT", "10.77.B.2:PORT", ...], "node_ids": [hex, ...],
         "seeder": "10.77.A.2:PORT"|null, "infohash": hex|null, "magnet": "magnet:?xt=urn:btih:..."|null,
         "stored_on": [...], "bootstrap_seconds": s, "announce_seconds": s|null,
         "root_address": "10.77.H.1"|null}
        once every node's routing table holds at least min(N-1, 8) other nodes, and (with --seed) the
        first node seeds TORRENT from DATA_DIR and another node's get_peers lookup returned the
        seeder's address. Then runs until stdin closes or SIGTERM/SIGINT.
        Each node is a process of its own (`node` below) in a harness namespace plk-N of its own
        (netns.py's naming), listening on 10.77.N.2, the address of its veth plkN-n: a /24 each,
        since libtorrent keeps one node per /24 by default. The other end of each node's veth is a
        port of a bridge in a hub namespace plk-H, and every 10.77.x.y is on-link over that bridge,
        so the nodes talk to one another directly (no router, no forwarding anywhere). The hub's own
        veth pair keeps its end plkH-r in the root namespace, with "root_address" 10.77.H.1 (a /24
        no node has), and the root namespace routes each node's /24 through it: a program there (a
        Potluck node under test, bound to any address) reaches every node, and the nodes see it, and
        connect to it, at root_address. Nothing else in the root namespace changes.
        With an IPv6 base (unique-local, fd00::/8) the lab is an IPv6 DHT (BEP 32) instead, in the
        caller's namespace (no namespaces made; the caller adds the addresses to its namespace's
        loopback; one process per node all the same): node i adds i to the base's third group
        (fd00:0:1::1, fd00:0:2::1, ...: a /48 each), endpoints are written [ADDR]:PORT, and
        "root_address" is null. TCP (peers) and UDP (DHT) share one port: --port P for every node,
        or by default a free port each.
        "magnet" has the info hash and name only (no trackers, no peers): the DHT must find the seeder.
        "stored_on" lists the nodes that accepted the seeder's announce_peer (libtorrent may count the
        seeder's own node among them). Node ids are random per run, and stay put while it runs.
        --timeout (default 60) bounds the bootstrap and, separately, the announce check; on failure
        the line is {"error": "...", ...} and the exit status 1.
  fetch MAGNET OUT_DIR --bootstrap IP:PORT [--bind IP] [--port P] [--timeout S]
      → {"ok": true, "seconds": s, "metadata_seconds": s, "bootstrap_seconds": s,
         "first_peer_seconds": s, "peers": ["IP:PORT", ...], "bytes": n}
        A leecher with the DHT on, told of one node only (--bootstrap). With a node of an IPv4 lab,
        it runs in a harness namespace of its own joined to that lab's bridge (found from the root
        namespace's route to the node), on 10.77.L.2: a /24 of its own; the namespace is deleted when
        it exits. With a node of an IPv6 lab, it runs in the caller's namespace and listens on --bind,
        a unique-local address of its own /48 (required then, refused for IPv4). Once the node is in
        its routing table it adds the magnet, looks the info hash up in the DHT, fetches the info
        dictionary from the peers it finds (BEP 9) and downloads into OUT_DIR. "seconds" and
        "metadata_seconds" count from the magnet's addition (the DHT is up by then),
        "bootstrap_seconds" from the session's start (its namespace made by then). "peers" lists every
        peer it dialled (what the DHT returned, stale entries included). Exit 0 only when the
        download completed and passed its hash check within --timeout (default 60); otherwise
        {"ok": false, "error": "...", ...} and 1.
  node --address ADDR [--port P]
        One lab node, started by `start` inside the node's namespace: prints {"endpoint": "ADDR:PORT"}
        once listening, then answers each JSON request line on its stdin with one JSON line
        ({"op": "status"|"introduce"|"seed"|"announce"|"lookup"|"node_id", ...}; see Node.handle),
        until stdin closes.

Clean-up: `start` and `fetch` stop every process they started and delete every namespace they made
(with them go the veths, the bridge and the root namespace's routes to the nodes) when they exit: at
the end of stdin, on SIGTERM/SIGINT/SIGHUP, or on failure. After a SIGKILL, the node processes die
with `start` (parent-death signal), and `netns.py cleanup --run ID` deletes the namespaces of a run
started with POTLUCK_INTEROP_RUN=ID (plain `netns.py cleanup`: every harness namespace).

The sessions talk only to the lab's network (10.77.x.y on the bridge), loopback and unique-local IPv6
addresses: they never contact libtorrent's default DHT routers, accept peers from nowhere else, and
run no LSD, UPnP, NAT-PMP, uTP or peer exchange.
Exit status: 0 success, 1 failure (message on stderr), 2 usage error, 128+N killed by signal N.
"""

import argparse
import contextlib
import ipaddress
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HarnessError  # noqa: E402

try:
    import libtorrent as lt
except ImportError:
    sys.exit("dht_lab.py: cannot import libtorrent; run it with Debian's /usr/bin/python3 "
             "(package python3-libtorrent)")

CAT = lt.alert.category_t
# dht_notification: incoming announces (who stored the seeder); dht_operation_notification: replies to
# our own get_peers lookups and the routing-table statistics.
ALERTS = CAT.error_notification | CAT.status_notification | CAT.storage_notification | \
    CAT.dht_notification | CAT.dht_operation_notification
ERROR_ALERTS = (lt.torrent_error_alert, lt.file_error_alert, lt.listen_failed_alert)
# Every lab namespace's /24 (10.77.N.0/24, N its harness index) lies in it: on-link over the bridge.
LAB_NETWORK = f"{common.SUBNET}.0.0/16"
BRIDGE = "br0"
# How long a node may take to answer one request from `start` (it answers within milliseconds).
NODE_REPLY_SECONDS = 20


def lab_settings(listen):
    """Settings of every session here, lab nodes and leecher alike; every change from libtorrent
    2.0's defaults says why. Measured on 2.0.8 with one /24 per node, only dht_bootstrap_nodes
    (and introducing the nodes, adding the torrent late) is needed for the lab itself; the rest
    keeps it working with shared /24s, with a node under test, and over long runs."""
    return {
        # One address and port per node: TCP for peers, UDP for the DHT (and uTP, off below).
        "listen_interfaces": listen,
        # Peer connections from that address too (the IPv6 lab's nodes share one namespace, where the
        # kernel would pick one source address for every node).
        "outgoing_interfaces": listen.rpartition(":")[0].strip("[]"),
        "enable_dht": True,
        # Default "dht.libtorrent.org:25401": the lab must never leave its network. Besides, libtorrent
        # never puts its routers in its routing table, so nodes are introduced with add_dht_node.
        "dht_bootstrap_nodes": "",
        # Only the DHT finds peers here; these would look for (or expose) peers elsewhere.
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        # TCP peer connections only, as the other tools (the DHT still runs on the UDP socket).
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        # Default True: one node per /24 in the routing table and in a lookup's result set (16 nodes
        # on one /24 get one neighbour each, and the bootstrap never completes). Each lab node has
        # a /24 of its own anyway, but nodes under test may share one (Potluck and aria2, in the
        # root namespace, both appear at the lab's root address); they must not be dropped for that.
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        # Default True: drop nodes in some class A networks that are not on the public internet
        # (3/8, 6/8, ...). 10/8 (the lab's network) and 127/8 pass libtorrent 2.0.8's test (the lab
        # converges with it on), but nothing here may depend on that list.
        "dht_ignore_dark_internet": False,
        # Default True: prefer BEP 42 ids (derived from the external address) when a bucket is
        # full. Nobody here has an external address to derive one from, so a node under test with
        # any id must rank as the lab's own do (no measurable effect on the lab itself).
        "dht_prefer_verified_node_ids": False,
        # Default False already; pinned: with it on, nodes whose id does not match their address
        # under BEP 42 are ignored, and a node under test picks its id as it likes.
        "dht_enforce_node_id": False,
        # Default 5: an address sending more than 5 messages/s (50 in 10 s) is ignored for
        # dht_block_timeout (300 s). Measured: 180 pings at 20/s from one address get 82 answers
        # with the default, all 180 with this. A node under test that queries quickly (or a leecher
        # looking again and again) would silently drop out of the lab.
        "dht_block_ratelimit": 1000,
        # And if an address does get blocked anyway, for 5 s rather than for the rest of the test.
        "dht_block_timeout": 5,
        # Default 8000 bytes/s for all DHT traffic of a node: bootstrap pings N-1 nodes at once and
        # lookups answer with 8 nodes each; with many nodes or a busy node under test the limit
        # would queue them (no measurable effect at 16 nodes).
        "dht_upload_rate_limit": 10 * 1024 * 1024,
        # Default 900 s between a torrent's DHT announces (and a leecher's lookups). Re-announce every
        # 30 s so the lab keeps serving after nodes come and go, and a leecher retries soon.
        "dht_announce_interval": 30,
        # Default 20 failed queries before a node leaves the routing table; a stopped node under
        # test is replaced (and a restarted one taken back) sooner.
        "dht_max_fail_count": 3,
        # Several lab peers and a node under test may share an address.
        "allow_multiple_connections_per_ip": True,
        "alert_mask": ALERTS,
        # Seed to every requester at once.
        "unchoke_slots_limit": -1,
        "user_agent": "potluck-interop/libtorrent-" + lt.__version__,
    }


def peer_filter(own_address=None):
    """Peer connections only to and from the lab's network (10.77.x.y), loopback and unique-local
    IPv6 (the DHT lookups return only lab addresses, but a node under test could hand out anything);
    and, for the leecher, not to itself: it announces itself in the DHT like any libtorrent client,
    then finds itself and dials itself."""
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule(f"{common.SUBNET}.0.0", f"{common.SUBNET}.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    f.add_rule("::1", "::1", 0)
    f.add_rule("fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0)
    if own_address:
        f.add_rule(own_address, own_address, 1)
    return f


CHECKING = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)


class Node:
    """One libtorrent session with the DHT on, and what its alerts told us."""

    def __init__(self, address, port, extra_alerts=0, leecher=False):
        self.address, self.port = address, port
        self.endpoint = endpoint_text(address, port)
        settings = lab_settings(self.endpoint)
        settings["alert_mask"] |= extra_alerts
        self.session = lt.session(settings)
        self.session.set_ip_filter(peer_filter(address if leecher else None))
        self.table_size = 0        # nodes in the routing table, from the last dht_stats_alert
        self.stats_pending = False
        self.found = {}            # info hash (hex) -> set of "ip:port" from get_peers replies
        self.announced = set()     # (info hash, "ip:port") announce_peer messages this node took
        self.metadata_at = None
        self.connected = {}        # "ip:port" of each peer connection -> when it was made
        self.seeding = None        # the torrent handle a lab node seeds

    def close(self):
        """Destroy the session now (its threads stop), not whenever the last reference goes."""
        self.session = None

    def node_id(self):
        """The DHT node id (hex); random per run, and stable in the lab: libtorrent never takes a
        private (10/8), loopback or unique-local address for an external one, so no BEP 42 id
        replaces it."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # save_state: the only way in Python
            ids = self.session.save_state().get(b"dht state", {}).get(b"node-id", [])
        return ids[0][:20].hex() if ids else None

    def pump(self):
        for alert in self.session.pop_alerts():
            if isinstance(alert, ERROR_ALERTS):
                raise HarnessError(f"{self.endpoint}: {alert.message()}")
            if isinstance(alert, lt.dht_stats_alert):
                self.table_size = sum(bucket["num_nodes"] for bucket in alert.routing_table)
                self.stats_pending = False
            elif isinstance(alert, lt.dht_get_peers_reply_alert):
                peers = self.found.setdefault(str(alert.info_hash), set())
                peers.update(endpoint_text(ip, port) for ip, port in alert.peers())
            elif isinstance(alert, lt.dht_announce_alert):
                self.announced.add((str(alert.info_hash), endpoint_text(alert.ip, alert.port)))
            elif isinstance(alert, lt.metadata_received_alert) and self.metadata_at is None:
                self.metadata_at = time.monotonic()
            elif isinstance(alert, lt.peer_connect_alert):
                self.connected.setdefault(endpoint_text(*alert.endpoint), time.monotonic())
            elif isinstance(alert, lt.hash_failed_alert):
                common.log(f"{self.endpoint}: {alert.message()}")

    def ask_stats(self):
        if not self.stats_pending:
            self.stats_pending = True
            self.session.post_dht_stats()

    def listening(self):
        return self.session.is_listening() and self.session.listen_port() == self.port

    def handle(self, request):
        """One request from `start` (a lab node's stdin) → its reply.
        status: {"table_size": n, "found": {infohash: [endpoints]}, "announced": [[infohash, endpoint]],
                 "seed": null|"checking"|"seeding"|"incomplete: V/N pieces"} (and asks for fresh stats);
        introduce {"nodes": [[ip, port], ...]}: add_dht_node each; seed {"torrent", "save_path"}: add
        it (the node then seeds it); announce: force_dht_announce of that torrent; lookup
        {"infohash"}: a fresh get_peers lookup (forgetting what earlier ones found); node_id."""
        op = request.get("op")
        if op == "status":
            self.ask_stats()
            seed = None
            if self.seeding is not None:
                status = self.seeding.status()
                if status.state in CHECKING:
                    seed = "checking"
                elif status.is_seeding:
                    seed = "seeding"
                else:
                    seed = f"incomplete: {sum(status.pieces)}/{len(status.pieces)} pieces verified"
            return {"table_size": self.table_size, "seed": seed,
                    "found": {h: sorted(peers) for h, peers in self.found.items()},
                    "announced": sorted([h, peer] for h, peer in self.announced)}
        if op == "introduce":
            for address, port in request["nodes"]:
                self.session.add_dht_node((address, port))
            return {}
        if op == "seed":
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(request["torrent"])
            params.save_path = request["save_path"]
            params.flags = (params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | \
                lt.torrent_flags.disable_pex
            self.seeding = self.session.add_torrent(params)
            return {}
        if op == "announce":
            self.seeding.force_dht_announce()
            return {}
        if op == "lookup":
            self.found.pop(request["infohash"], None)
            self.session.dht_get_peers(lt.sha1_hash(bytes.fromhex(request["infohash"])))
            return {}
        if op == "node_id":
            return {"node_id": self.node_id()}
        raise HarnessError(f"unknown request {op!r}")


class RemoteNode:
    """`start`'s handle on one node process: one request line out, one reply line back."""

    def __init__(self, proc, netns, address):
        self.proc, self.netns, self.address = proc, netns, address
        self.endpoint = None
        self.buffer = b""

    def send(self, op, **fields):
        try:
            os.write(self.proc.stdin.fileno(), (json.dumps({"op": op, **fields}) + "\n").encode())
        except BrokenPipeError:
            raise HarnessError(f"{self.name()} exited with status {self.proc.wait(5)}") from None

    def receive(self, timeout=NODE_REPLY_SECONDS):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{self.name()} did not answer within {timeout:g} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    status = self.proc.wait(5)
                    raise HarnessError(f"{self.name()} exited with status {status}")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "error" in reply:
            raise HarnessError(f"{self.name()}: {reply['error']}")
        return reply

    def call(self, op, **fields):
        self.send(op, **fields)
        return self.receive()

    def name(self):
        return f"node {self.endpoint or self.address}" + (f" (in {self.netns})" if self.netns else "")


def call_all(nodes, op, **fields):
    """The same request to every node at once; their replies, in order."""
    for node in nodes:
        node.send(op, **fields)
    return [node.receive() for node in nodes]


def endpoint_text(address, port):
    """ADDR:PORT, or [ADDR]:PORT for IPv6."""
    address = str(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def free_ipv6_port(address):
    """A port free for both TCP and UDP on an IPv6 address (common.free_tcp_udp_port is IPv4)."""
    for _ in range(50):
        with common.socket.socket(common.socket.AF_INET6, common.socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
            with common.socket.socket(common.socket.AF_INET6, common.socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                    return port
                except OSError:
                    continue
    raise HarnessError(f"no free TCP+UDP port on {address}")


def claim_port(address, port):
    """A free TCP+UDP port on address: the one asked for, checked, or any. libtorrent binds with
    SO_REUSEADDR, so a UDP port another lab already holds would be shared silently (each datagram
    going to one of the two), not refused; these probes bind without it and are refused."""
    family = common.socket.AF_INET6 if ":" in address else common.socket.AF_INET
    if not port:
        if family == common.socket.AF_INET6:
            return free_ipv6_port(address)
        return common.free_tcp_udp_port(address)
    for kind in (common.socket.SOCK_STREAM, common.socket.SOCK_DGRAM):
        with common.socket.socket(family, kind) as probe:
            try:
                probe.bind((address, port))
            except OSError as error:
                raise HarnessError(f"{address}:{port} is taken: {error.strerror}") from None
    return port


def ipv6_node_addresses(base, count):
    """base, then its third group + 1, + 2, ...: one /48 per node."""
    try:
        addr = ipaddress.ip_address(base)
    except ValueError:
        raise HarnessError(f"--base must be an IP address, got {base!r}") from None
    if addr.version != 6 or addr not in ipaddress.ip_network("fd00::/8"):
        raise HarnessError(f"--base {base} is not a unique-local IPv6 address (fd00::/8); an IPv4 lab "
                           f"takes no --base (its nodes get 10.77.N.2 in namespaces of their own)")
    groups = list(addr.exploded.split(":"))
    third = int(groups[2], 16)
    if third + count - 1 > 0xffff:
        raise HarnessError(f"--base {base} leaves no room for {count} /48s")
    return [str(ipaddress.IPv6Address(":".join(groups[:2] + [f"{third + i:x}"] + groups[3:])))
            for i in range(count)]


# --- the lab's network ---

def create_hub(stack):
    """The hub namespace plk-H with the bridge; its veth pair's root end plkH-r keeps 10.77.H.1/24,
    its other end becomes a port of the bridge. Deleted (with everything on it) when stack unwinds."""
    with common.signals_deferred():
        hub = common.netns_create()
        stack.callback(common.netns_delete, hub["netns"])
    name, port = hub["netns"], hub["ns_veth"]
    common.ip("-n", name, "link", "add", BRIDGE, "type", "bridge")
    # No IPv6 link-local address on the bridge either: only what the lab sends crosses it.
    common.ip("-n", name, "link", "set", BRIDGE, "addrgenmode", "none")
    common.ip("-n", name, "addr", "flush", "dev", port)  # a bridge port needs no address
    common.ip("-n", name, "link", "set", port, "master", BRIDGE)
    common.ip("-n", name, "link", "set", BRIDGE, "up")
    return {"netns": name, "root_veth": hub["root_veth"], "root_address": hub["root_address"]}


def hub_of(address):
    """The hub of the IPv4 lab that a node address belongs to: the root namespace routes every node's
    /24 through the hub's veth plkH-r."""
    route = common.ip("-o", "route", "get", address, check=False).stdout
    m = re.search(r"\bdev plk(\d+)-r\b", route)
    hub = f"{common.NS_PREFIX}{m.group(1)}" if m else None
    if not hub or common.ip("-n", hub, "link", "show", BRIDGE, check=False).returncode != 0:
        raise HarnessError(f"{address} is not a node of a dht_lab.py lab (route: {route.strip() or 'none'})")
    return {"netns": hub, "root_veth": f"plk{m.group(1)}-r",
            "root_address": f"{common.SUBNET}.{m.group(1)}.1"}


def join_hub(stack, hub):
    """A new harness namespace plk-N on the hub's bridge, with 10.77.N.2 (a /24 of its own) on its
    veth; returns (namespace, address). Deleted (with its route) when stack unwinds."""
    with common.signals_deferred():
        ns = common.netns_create()
        stack.callback(common.netns_delete, ns["netns"])
    name, index = ns["netns"], ns["index"]
    # The root end of the pair goes into the hub, as a bridge port (its root address goes with it;
    # the hub's defaults would give it an IPv6 link-local address as it comes up there).
    common.ip("link", "set", ns["root_veth"], "netns", hub["netns"])
    common.ip("-n", hub["netns"], "link", "set", ns["root_veth"], "addrgenmode", "none", "master", BRIDGE)
    common.ip("-n", hub["netns"], "link", "set", ns["root_veth"], "up")
    # Every other lab address is on the bridge: reached directly, by ARP, with no router.
    common.ip("-n", name, "route", "add", LAB_NETWORK, "dev", ns["ns_veth"])
    # The root namespace reaches this /24 through its end of the hub's pair.
    subnet = f"{common.SUBNET}.{index}.0/24"
    with common.signals_deferred():
        common.ip("route", "add", subnet, "dev", hub["root_veth"], "src", hub["root_address"])
        stack.callback(common.ip, "route", "del", subnet, "dev", hub["root_veth"], check=False)
    return name, ns["ns_address"]


def introduce(nodes, who):
    """Each node in `who` pings every other node (add_dht_node): a node that answers enters the
    pinger's routing table, and the pinger enters the answerer's, as any querying node does."""
    for node in who:
        node.send("introduce", nodes=[list(common.parse_hostport(other.endpoint))
                                      for other in nodes if other is not node])
    for node in who:
        node.receive()


def pure_magnet(ti):
    """Info hash and name only: nothing but the DHT can find a peer for it."""
    return f"magnet:?xt=urn:btih:{ti.info_hashes().v1}&dn={urllib.parse.quote(ti.name())}"


def stop_nodes(nodes):
    """Stop every node process at once: stdin closed, SIGTERM to those still running after 2 s;
    what is left 5 s later is killed with its namespace."""
    for node in nodes:
        with contextlib.suppress(OSError):
            node.proc.stdin.close()
    for grace, signum in ((2, signal.SIGTERM), (5, None)):
        deadline = time.monotonic() + grace
        for node in nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(max(0.0, deadline - time.monotonic()))
        for node in nodes:
            if signum and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signum)


def cmd_start(args):
    if not 2 <= args.nodes <= 128:
        raise HarnessError("--nodes must be 2..128")
    ipv6 = ipv6_node_addresses(args.base, args.nodes) if args.base else None
    if ipv6 is None and os.geteuid() != 0:
        raise HarnessError("an IPv4 lab makes network namespaces: run it as root")
    ti = None
    if args.seed:
        torrent, data_dir = args.seed
        common.check_torrent_endpoints(torrent)
        try:
            ti = lt.torrent_info(torrent)
        except RuntimeError as error:
            raise HarnessError(f"{torrent}: {error}") from None
        if not ti.info_hashes().has_v1():
            raise HarnessError(f"{torrent} is v2-only; the lab announces v1 info hashes")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        root_address = None
        if ipv6:
            places = [(None, address) for address in ipv6]
        else:
            hub = create_hub(stack)
            root_address = hub["root_address"]
            places = [join_hub(stack, hub) for _ in range(args.nodes)]
            common.log(f"hub {hub['netns']} and {args.nodes} node namespaces made in "
                       f"{time.monotonic() - started:.2f} s")
        nodes = []
        for netns, address in places:
            argv = [sys.executable, os.path.abspath(__file__), "node", "--address", address,
                    "--port", str(args.port)]
            if netns:
                argv = ["ip", "netns", "exec", netns] + argv
            proc = common.spawn(argv, stack, name=f"node {address}", stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
            nodes.append(RemoteNode(proc, netns, address))
        stack.callback(stop_nodes, nodes)
        for node in nodes:
            node.endpoint = node.receive(timeout=args.timeout)["endpoint"]
        common.log(f"{args.nodes} nodes listening after {time.monotonic() - started:.2f} s")
        return run_lab(args, nodes, ti, started, root_address)


def run_lab(args, nodes, ti, started, root_address):
    # Bootstrap: everyone pings everyone, again every 2 s for nodes still short of neighbours (a
    # lost ping, or a node whose socket opened late).
    want = min(args.nodes - 1, 8)
    last_intro = [0.0]
    sizes = [0] * len(nodes)

    def tables_full():
        sizes[:] = [reply["table_size"] for reply in call_all(nodes, "status")]
        short = [n for n, size in zip(nodes, sizes) if size < want]
        if not short:
            return True
        if time.monotonic() - last_intro[0] >= 2:
            introduce(nodes, short if last_intro[0] else nodes)
            last_intro[0] = time.monotonic()
        return False
    try:
        common.wait_until(tables_full, args.timeout, f"every routing table to hold {want} nodes",
                          interval=0.05)
    except HarnessError as error:
        common.emit({"error": str(error),
                     "routing_table_sizes": {n.endpoint: size for n, size in zip(nodes, sizes)}})
        raise
    bootstrap_seconds = time.monotonic() - started
    common.log(f"{args.nodes} nodes bootstrapped in {bootstrap_seconds:.2f} s")

    seeder = infohash = magnet = announce_seconds = None
    stored_on = []
    if ti is not None:
        first = nodes[0]
        # Added only now: a torrent added before the DHT has nodes waits dht_announce_interval for
        # its first announce.
        first.call("seed", torrent=os.path.abspath(args.seed[0]), save_path=os.path.abspath(args.seed[1]))

        def seeding():
            state = first.call("status")["seed"]
            if state == "checking":
                return False
            if state != "seeding":
                raise HarnessError(f"data in {args.seed[1]} is incomplete ({state})")
            return True
        common.wait_until(seeding, args.timeout, "the seeder to finish checking", interval=0.05)
        infohash = str(ti.info_hashes().v1)
        seeder = first.endpoint
        magnet = pure_magnet(ti)
        announce_started = time.monotonic()
        first.call("announce")
        # Proof the announce landed: another node's lookup, walking the DHT as a leecher's would,
        # returns the seeder. The probe is the node furthest along the list (any non-seeder would do).
        probe = nodes[-1]
        last_lookup = [0.0]
        last_announce = [announce_started]

        def found():
            if seeder in probe.call("status")["found"].get(infohash, ()):
                return True
            now = time.monotonic()
            if now - last_lookup[0] >= 1:
                probe.call("lookup", infohash=infohash)
                last_lookup[0] = now
            if now - last_announce[0] >= 5:
                first.call("announce")
                last_announce[0] = now
            return False

        def stored():
            return [n.endpoint for n, reply in zip(nodes, call_all(nodes, "status"))
                    if [infohash, seeder] in reply["announced"]]
        try:
            common.wait_until(found, args.timeout, "a get_peers lookup to return the seeder", interval=0.02)
        except HarnessError as error:
            common.emit({"error": str(error), "nodes": [n.endpoint for n in nodes], "seeder": seeder,
                         "stored_on": stored()})
            raise
        announce_seconds = time.monotonic() - announce_started
        stored_on = stored()
        common.log(f"seeder {seeder} found by {probe.endpoint} after {announce_seconds:.2f} s; "
                   f"stored on {len(stored_on)} nodes")

    common.emit({"nodes": [n.endpoint for n in nodes],
                 "node_ids": [reply["node_id"] for reply in call_all(nodes, "node_id")],
                 "seeder": seeder, "infohash": infohash,
                 "magnet": magnet, "stored_on": stored_on, "bootstrap_seconds": round(bootstrap_seconds, 3),
                 "announce_seconds": None if announce_seconds is None else round(announce_seconds, 3),
                 "root_address": root_address})
    # The nodes run on their own; a node that stops (an error alert, a kill) stops the lab.
    common.serve_until_stdin_closes(procs=[n.proc for n in nodes], interval=0.5)
    common.log("stdin closed; stopping")
    return 0


def cmd_node(args):
    node = Node(args.address, claim_port(args.address, args.port))
    try:
        common.wait_until(node.listening, 10, f"{node.endpoint} to listen", interval=0.02)
    except HarnessError:
        raise HarnessError(f"{node.endpoint}: not listening (address or port taken?)") from None
    common.emit({"endpoint": node.endpoint})
    stdin, pending = sys.stdin.fileno(), b""
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.1)
        node.pump()
        if not readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            return 0  # the lab stops
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                reply = node.handle(json.loads(line))
            except (HarnessError, RuntimeError, KeyError, ValueError, AttributeError) as error:
                reply = {"error": f"{type(error).__name__}: {error}"}
            common.emit(reply)


def check_magnet(params):
    """The harness talks only to its own addresses: refuse trackers, peers and web seeds elsewhere."""
    for url in list(params.trackers) + list(params.url_seeds):
        common.check_allowed_address(urllib.parse.urlsplit(url).hostname)
    for host, _ in params.peers:
        common.check_allowed_address(host)
    for host, _ in params.dht_nodes:
        common.check_allowed_address(host)


def cmd_fetch(args):
    try:
        params = lt.parse_magnet_uri(args.magnet)
    except RuntimeError as error:
        raise HarnessError(f"not a magnet link: {error}") from None
    check_magnet(params)
    bootstrap = common.parse_hostport(args.bootstrap)
    with contextlib.ExitStack() as stack:
        if ipaddress.ip_address(bootstrap[0]).version == 4:
            if args.bind:
                raise HarnessError("--bind is for an IPv6 lab; with an IPv4 lab the leecher gets a "
                                   "namespace of its own on the lab's bridge")
            if os.geteuid() != 0:
                raise HarnessError("a leecher in an IPv4 lab runs in a network namespace: run it as root")
            netns, bind = join_hub(stack, hub_of(bootstrap[0]))
            place = common.in_netns(netns)
        else:
            bind = args.bind
            try:
                local = ipaddress.ip_address(bind or "") in ipaddress.ip_network("fd00::/8")
            except ValueError:
                local = False
            if not local:
                raise HarnessError(f"--bind {bind}: an IPv6 lab's leecher needs a unique-local IPv6 "
                                   f"address (fd00::/8) of its own")
            place = contextlib.nullcontext()
        # The session lives and dies inside the namespace, so every thread it starts is there.
        with place:
            # Counted from the session's start, as a client's start (the namespace is made by then).
            started = time.monotonic()
            # connect_notification: which peers it reached, and when.
            node = Node(bind, claim_port(bind, args.port), extra_alerts=CAT.connect_notification,
                        leecher=True)
            try:
                return leech(args, params, bootstrap, node, started)
            finally:
                node.close()


def leech(args, params, bootstrap, node, started):
    os.makedirs(args.out_dir, exist_ok=True)
    result = {"ok": False, "seconds": None, "metadata_seconds": None, "bootstrap_seconds": None,
              "first_peer_seconds": None, "peers": [], "bytes": 0}
    deadline = started + args.timeout

    def wait(predicate, what, interval):
        """wait_until against the overall --timeout."""
        try:
            common.wait_until(predicate, max(0.0, deadline - time.monotonic()), what, interval=interval)
        except HarnessError as error:
            if str(error).startswith("timed out"):
                raise HarnessError(f"timed out after {args.timeout:g} s waiting for {what}") from None
            raise

    last_ping = [0.0]

    def bootstrapped():
        node.pump()
        if node.table_size >= 1:
            return True
        if time.monotonic() - last_ping[0] >= 1:
            if not node.listening():
                raise HarnessError(f"{node.endpoint}: not listening (address or port taken?)")
            node.session.add_dht_node(bootstrap)
            last_ping[0] = time.monotonic()
        node.ask_stats()
        return False
    try:
        wait(bootstrapped, f"{args.bootstrap} to answer and enter the routing table", 0.05)
        result["bootstrap_seconds"] = round(time.monotonic() - started, 3)
        params.save_path = os.path.abspath(args.out_dir)
        params.flags = (params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | \
            lt.torrent_flags.disable_pex
        added = time.monotonic()
        handle = node.session.add_torrent(params)
        handle.force_dht_announce()
        last_lookup = [added]

        def complete():
            node.pump()
            status = handle.status()
            now = time.monotonic()
            if status.num_peers == 0 and now - last_lookup[0] >= 3:
                # Nothing found (yet): look again rather than wait for dht_announce_interval.
                handle.force_dht_announce()
                last_lookup[0] = now
            return status.is_seeding
        try:
            wait(complete, "the download to complete", 0.01)
        finally:
            node.pump()
            if node.metadata_at is not None:
                result["metadata_seconds"] = round(node.metadata_at - added, 3)
            result["peers"] = sorted(node.connected)
            if node.connected:
                result["first_peer_seconds"] = round(min(node.connected.values()) - added, 3)
        result["seconds"] = round(time.monotonic() - added, 3)
        handle.flush_cache()
        result["bytes"] = handle.status().total_wanted_done
        result["ok"] = True
    except HarnessError as error:
        result["error"] = str(error)
        common.emit(result)
        raise
    common.emit(result)
    return 0


def main():
    parser = argparse.ArgumentParser(prog="dht_lab.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("start", help="run a DHT of N libtorrent nodes, each in a namespace, until stdin closes",
        description="run a DHT of N libtorrent nodes, each in a network namespace of its own, until stdin "
                    "closes; output and exit status: dht_lab.py --help")
    p.add_argument("--nodes", type=int, required=True, metavar="N", help="lab nodes (2..128)")
    p.add_argument("--seed", nargs=2, metavar=("TORRENT", "DATA_DIR"),
                   help="the first node seeds TORRENT from DATA_DIR and announces it in the DHT")
    p.add_argument("--base", metavar="ADDR",
                   help="an IPv6 lab in the caller's namespace instead: the first node's unique-local "
                        "address (e.g. fd00:0:1::1); node i adds i to its third group")
    p.add_argument("--port", type=int, default=0, metavar="P",
                   help="TCP+UDP port of every node (default: a free port for each)")
    p.add_argument("--timeout", type=float, default=60, metavar="S",
                   help="limit for the bootstrap, and for the announce check (default 60)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("fetch", help="download a magnet link, finding peers through one lab node",
        description="download a magnet link, finding peers through one lab node; output and exit "
                    "status: dht_lab.py --help")
    p.add_argument("magnet", metavar="MAGNET")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--bootstrap", required=True, metavar="IP:PORT", help="the only node it is told of")
    p.add_argument("--bind", metavar="IP",
                   help="an IPv6 lab's leecher: the unique-local address to listen on, its own /48 "
                        "(an IPv4 lab's leecher gets a namespace and an address of its own)")
    p.add_argument("--port", type=int, default=0, metavar="P", help="TCP+UDP port (default: a free one)")
    p.add_argument("--timeout", type=float, default=60, metavar="S", help="overall limit (default 60)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("node", help="one lab node, driven by `start` over its stdin and stdout",
        description="one lab node, driven by `start` over its stdin and stdout; see dht_lab.py --help")
    p.add_argument("--address", required=True, metavar="ADDR")
    p.add_argument("--port", type=int, default=0, metavar="P")
    p.set_defaults(func=cmd_node)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
