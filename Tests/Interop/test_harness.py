"""Self-tests of the interop harness against the real clients (root, Debian packages installed).

Run: /usr/bin/python3 -m unittest discover -s Tests/Interop -p 'test_*.py'
Each test starts real libtorrent, Transmission, aria2 and opentracker processes on loopback or in
namespaces the harness creates, compares the downloaded bytes with the payload, and checks that the
tools left no process, namespace or temporary directory behind.
"""

import contextlib
import filecmp
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

PYTHON = "/usr/bin/python3"  # the interpreter that sees python3-libtorrent
PIECE = 256 * 1024
# Not multiples of the piece size, so the last piece is short and one piece spans two files.
FILES = {"a.bin": 2 * 1024 * 1024 + 12345, "sub/b.bin": 1024 * 1024 + 7, "sub/c/tiny.txt": 1000}


def tool(name):
    return [PYTHON, os.path.join(HERE, name)]


def run(argv, timeout=120):
    """Run a tool to completion; returns (status, parsed JSON line or None, stderr)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, json.loads(lines[-1]) if lines else None, done.stderr


class Service:
    """A long-running tool: started with a pipe on stdin, ready when it prints its JSON line."""

    def __init__(self, argv, timeout=60):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, process_group=0)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.kill()
            raise AssertionError(f"{argv[1]} did not become ready: {self.proc.stderr.read()[-2000:]}")
        self.info = json.loads(line)

    def close(self, timeout=30):
        """Close stdin, as a caller does, and return the exit status."""
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.proc.args[1]} ignored its stdin closing") from None
        finally:
            self.release()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.release()

    def stop(self):
        """After a failed test: let the tool tear down what it made (stdin EOF, then SIGTERM), and
        SIGKILL it only if it does not."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            for escalate in (None, signal.SIGTERM):
                if escalate:
                    os.killpg(self.proc.pid, escalate)
                try:
                    self.proc.wait(20)
                    break
                except subprocess.TimeoutExpired:
                    pass
        self.kill()

    def release(self):
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not pipe.closed:
                pipe.close()


# Every tool this test starts inherits the run identifier, so what it leaves behind is told apart from
# what other harness runs on the machine are doing (the wrapper in Tests/System may have set one).
RUN = os.environ.setdefault(common.RUN_ENV, f"selftest{os.getpid()}{os.urandom(3).hex()}")


def harness_state():
    """This run's harness namespaces, veths and processes: the queries `netns.py cleanup --run` uses."""
    import netns  # noqa: E402
    return (set(netns.harness_namespaces(RUN)), set(netns.harness_veths(RUN)),
            set(netns.stray_processes(RUN)))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class InteropHarnessTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces)")
        # Not the tools' prefix: `netns.py cleanup` (tested below) must not remove it.
        cls.tmp = tempfile.mkdtemp(prefix="potluck-selftest-")
        cls.data = os.path.join(cls.tmp, "seed")
        for rel, size in FILES.items():
            path = os.path.join(cls.data, "payload", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(os.urandom(size))
        cls.torrent = os.path.join(cls.tmp, "payload.torrent")
        status, created, err = run(tool("lt.py") + ["create", os.path.join(cls.data, "payload"),
                                                      "-o", cls.torrent, "--piece-size", str(PIECE), "--v1"])
        assert status == 0, err
        cls.created = created

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.before = harness_state()
        self.services = []
        self.out = tempfile.mkdtemp(prefix="out-", dir=self.tmp)

    def tearDown(self):
        for service in self.services:
            service.stop()
        # Everything a tool started must be gone once the tool has exited.
        deadline = time.monotonic() + 10
        while True:
            namespaces, veths, procs = harness_state()
            leaked = (namespaces - self.before[0], veths - self.before[1], procs - self.before[2])
            if not any(leaked) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(leaked, (set(), set(), set()), "leftover namespaces, veths or processes")

    def start(self, argv, timeout=60):
        service = Service(argv, timeout)
        self.services.append(service)
        return service

    def assertSamePayload(self, out_dir):
        expected = os.path.join(self.data, "payload")
        got = os.path.join(out_dir, "payload")
        for rel in FILES:
            self.assertTrue(filecmp.cmp(os.path.join(expected, rel), os.path.join(got, rel), shallow=False),
                            f"{rel} differs")
        found = {os.path.relpath(os.path.join(d, f), got) for d, _, files in os.walk(got) for f in files}
        self.assertEqual(found, set(FILES))

    # --- libtorrent ---

    def test_create_and_info_describe_the_payload(self):
        self.assertRegex(self.created["infohash_v1"], r"^[0-9a-f]{40}$")
        self.assertIsNone(self.created["infohash_v2"])
        status, info, err = run(tool("lt.py") + ["info", self.torrent])
        self.assertEqual(status, 0, err)
        self.assertEqual(info["infohash_v1"], self.created["infohash_v1"])
        self.assertEqual(info["name"], "payload")
        self.assertEqual(info["piece_length"], PIECE)
        self.assertEqual(info["total_size"], sum(FILES.values()))
        self.assertEqual(info["piece_count"], -(-sum(FILES.values()) // PIECE))
        self.assertEqual({f["path"]: f["size"] for f in info["files"]},
                         {f"payload/{rel}": size for rel, size in FILES.items()})
        # The stdlib reading used by the non-libtorrent tools agrees with libtorrent.
        self.assertEqual(common.torrent_summary(self.torrent)["infohash_v1"], info["infohash_v1"])
        hybrid = os.path.join(self.out, "hybrid.torrent")
        status, both, err = run(tool("lt.py") + ["create", os.path.join(self.data, "payload"), "-o", hybrid,
                                                 "--hybrid"])
        self.assertEqual(status, 0, err)
        self.assertRegex(both["infohash_v2"], r"^[0-9a-f]{64}$")
        self.assertEqual(common.torrent_summary(hybrid)["infohash_v2"], both["infohash_v2"])

    def test_verify_accepts_the_payload_and_catches_one_flipped_byte(self):
        status, result, err = run(tool("lt.py") + ["verify", self.torrent, self.data])
        pieces = -(-sum(FILES.values()) // PIECE)
        self.assertEqual((status, result), (0, {"pieces": pieces, "verified": pieces}), err)
        shutil.copytree(os.path.join(self.data, "payload"), os.path.join(self.out, "payload"))
        with open(os.path.join(self.out, "payload", "sub", "b.bin"), "r+b") as f:
            f.seek(500000)
            byte = f.read(1)
            f.seek(500000)
            f.write(bytes([byte[0] ^ 1]))
        status, result, _ = run(tool("lt.py") + ["verify", self.torrent, self.out])
        self.assertEqual(status, 1)
        self.assertEqual(result["verified"], result["pieces"] - 1)

    def test_libtorrent_seeders_to_libtorrent_download(self):
        seeders = self.start(tool("lt.py") + ["seed", self.torrent, self.data, "--count", "3"])
        peers = seeders.info["peers"]
        self.assertEqual(len(set(peers)), 3)
        self.assertTrue(all(p.startswith("127.0.0.1:") for p in peers))
        args = ["download", self.torrent, self.out, "--timeout", "60"]
        for peer in peers:
            args += ["--peer", peer]
        status, result, err = run(tool("lt.py") + args)
        self.assertEqual(status, 0, err)
        self.assertTrue(result["complete"])
        self.assertGreaterEqual(result["bytes"], sum(FILES.values()))
        self.assertSamePayload(self.out)
        self.assertEqual(seeders.close(), 0)

    def test_libtorrent_download_fails_within_its_timeout_without_peers(self):
        port = common.free_port()  # nothing listens there
        started = time.monotonic()
        status, result, _ = run(tool("lt.py") + ["download", self.torrent, self.out, "--peer",
                                                 f"127.0.0.1:{port}", "--timeout", "3"])
        self.assertEqual(status, 1)
        self.assertFalse(result["complete"])
        self.assertLess(time.monotonic() - started, 20)

    # --- Transmission ---

    def test_transmission_seeder_in_a_namespace_to_libtorrent_and_aria2_downloads(self):
        seeder = self.start(tool("transmission.py") + ["seed", self.torrent, self.data], timeout=60)
        host, _ = common.parse_hostport(seeder.info["peer"])
        self.assertRegex(host, r"^10\.77\.\d+\.2$")
        self.assertIn(seeder.info["netns"], harness_state()[0])
        # Transmission drops a peer whose address already completed, so each downloader gets its own.
        first, second = seeder.info["client_addresses"][:2]
        status, result, err = run(tool("lt.py") + ["download", self.torrent, self.out, "--peer",
                                                   seeder.info["peer"], "--bind", first, "--timeout", "60"])
        self.assertEqual(status, 0, err)
        self.assertSamePayload(self.out)
        # aria2 learns the seeder from a tracker: the tool announces it from inside its namespace.
        out2 = tempfile.mkdtemp(prefix="out-", dir=self.tmp)
        status, result, err = run(tool("aria2.py") + ["download", self.torrent, out2, "--peer",
                                                      seeder.info["peer"], "--bind", second, "--timeout", "60"])
        self.assertEqual(status, 0, err)
        self.assertSamePayload(out2)
        # SIGTERM, as a test runner would send, tears down the daemon and the namespace too.
        seeder.proc.send_signal(signal.SIGTERM)
        self.assertEqual(seeder.proc.wait(30), 128 + signal.SIGTERM)
        self.assertFalse(alive(seeder.info["pid"]))
        self.assertNotIn(seeder.info["netns"], harness_state()[0])

    def test_transmission_download_from_libtorrent_seeders_on_root_side_addresses(self):
        status, ns, err = run(tool("netns.py") + ["create", "--root-addresses", "2"])
        self.assertEqual(status, 0, err)
        try:
            peers = []
            for address in ns["root_addresses"][1:]:
                seeder = self.start(tool("lt.py") + ["seed", self.torrent, self.data, "--bind", address])
                peers += ["--peer", seeder.info["peers"][0]]
            # The namespace is found from the peers' addresses.
            status, result, err = run(tool("transmission.py") + ["download", self.torrent, self.out,
                                                                 "--timeout", "60"] + peers)
            self.assertEqual(status, 0, err)
            self.assertEqual((result["corrupt_bytes"], result["netns"]), (0, ns["netns"]))
            self.assertSamePayload(self.out)
            for service in self.services:
                self.assertEqual(service.close(), 0)
        finally:
            status, _, err = run(tool("netns.py") + ["delete", ns["netns"]])
        self.assertEqual(status, 0, err)

    # --- aria2 ---

    def test_aria2_download_from_libtorrent_seeders_via_opentracker(self):
        seeders = self.start(tool("lt.py") + ["seed", self.torrent, self.data, "--count", "2"])
        args = ["download", self.torrent, self.out, "--timeout", "60"]
        for peer in seeders.info["peers"]:
            args += ["--peer", peer]
        status, result, err = run(tool("aria2.py") + args)
        self.assertEqual(status, 0, err)
        self.assertTrue(result["complete"])
        self.assertSamePayload(self.out)
        self.assertEqual(seeders.close(), 0)

    def test_aria2_download_via_the_tracker_libtorrent_seeders_announced_to(self):
        tracker = self.start(tool("tracker.py") + ["start", "--http-port", "0", "--udp-port", "0",
                                                   "--whitelist", self.created["infohash_v1"]])
        seeders = self.start(tool("lt.py") + ["seed", self.torrent, self.data, "--count", "2",
                                              "--tracker", tracker.info["udp"]])
        # The seeders announce on their own; wait until the tracker lists both.
        deadline = time.monotonic() + 20
        while True:
            reply = common.announce(tracker.info["http"], self.created["infohash_v1"], 1, left=1)
            if set(seeders.info["peers"]) <= set(reply["peers"]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertLessEqual(set(seeders.info["peers"]), set(reply["peers"]))
        common.announce(tracker.info["http"], self.created["infohash_v1"], 1, event="stopped")
        status, result, err = run(tool("aria2.py") + ["download", self.torrent, self.out, "--tracker",
                                                      tracker.info["http"], "--timeout", "60"])
        self.assertEqual(status, 0, err)
        self.assertSamePayload(self.out)
        self.assertEqual(seeders.close(), 0)
        self.assertEqual(tracker.close(), 0)

    def test_aria2_seeder_to_libtorrent_download(self):
        seeder = self.start(tool("aria2.py") + ["seed", self.torrent, self.data])
        status, result, err = run(tool("lt.py") + ["download", self.torrent, self.out, "--peer",
                                                   seeder.info["peer"], "--timeout", "60"])
        self.assertEqual(status, 0, err)
        self.assertSamePayload(self.out)
        self.assertEqual(seeder.close(), 0)
        self.assertFalse(alive(seeder.info["pid"]))

    # --- opentracker ---

    def test_opentracker_serves_whitelisted_hashes_only(self):
        whitelisted = self.created["infohash_v1"]
        other = "0123456789abcdef0123456789abcdef01234567"
        tracker = self.start(tool("tracker.py") + ["start", "--http-port", "0", "--udp-port", "0",
                                                   "--whitelist", whitelisted])
        for url in (tracker.info["http"], tracker.info["udp"]):
            self.assertRegex(url, r"^(http|udp)://127\.0\.0\.1:\d+/announce$")
        status, reply, err = run(tool("tracker.py") + ["announce", tracker.info["http"], "--infohash",
                                                       whitelisted, "--port", "40001"])
        self.assertEqual(status, 0, err)
        self.assertEqual(reply["peers"], ["127.0.0.1:40001"])  # and not the start-up probe
        # A second peer over UDP sees the first one: the tracker really keeps the swarm.
        status, reply, err = run(tool("tracker.py") + ["announce", tracker.info["udp"], "--infohash",
                                                       whitelisted, "--port", "40002", "--left", "10"])
        self.assertEqual(status, 0, err)
        self.assertIn("127.0.0.1:40001", reply["peers"])
        for url in (tracker.info["http"], tracker.info["udp"]):
            status, reply, _ = run(tool("tracker.py") + ["announce", url, "--infohash", other,
                                                         "--port", "40003"])
            self.assertEqual(status, 3, url)
            self.assertIn("failure", reply)
        pid = tracker.info["pid"]
        tracker.proc.send_signal(signal.SIGINT)
        self.assertEqual(tracker.proc.wait(30), 128 + signal.SIGINT)
        self.assertFalse(alive(pid))

    def test_bad_tracker_refuses_and_tls_proxy_serves_opentracker_over_https(self):
        bad = self.start(tool("bad_tracker.py") + ["failure"])
        for url in (bad.info["http"], bad.info["udp"]):
            status, reply, err = run(tool("tracker.py") + ["announce", url, "--infohash",
                                                           self.created["infohash_v1"], "--port", "40001"])
            self.assertEqual(status, 3, err)
            self.assertEqual(reply["failure"], "this tracker refuses you politely")
        tracker = self.start(tool("tracker.py") + ["start", "--http-port", "0", "--udp-port", "0",
                                                   "--whitelist", self.created["infohash_v1"]])
        cert, key = os.path.join(self.out, "cert.pem"), os.path.join(self.out, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
        upstream = tracker.info["http"].removeprefix("http://").split("/")[0]
        proxy = self.start(tool("tls_proxy.py") + ["--cert", cert, "--key", key, "--to", upstream])
        self.assertRegex(proxy.info["https"], r"^https://127\.0\.0\.1:\d+/announce$")
        host, port = proxy.info["https"].removeprefix("https://").split("/")[0].split(":")
        context = ssl.create_default_context(cafile=cert)
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=host) as sock:
                sock.sendall(b"GET /scrape HTTP/1.0\r\nHost: x\r\n\r\n")
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1."), answer[:200])
        self.assertIn(b"d5:filesd", answer)  # opentracker's bencoded scrape, through TLS

    def test_killed_transmission_tool_takes_its_daemon_along_and_cleanup_removes_the_namespace(self):
        seeder = self.start(tool("transmission.py") + ["seed", self.torrent, self.data], timeout=60)
        ns = seeder.info["netns"]
        seeder.kill()  # SIGKILL: no handler runs, as when a test runner is killed
        # The parent-death signal takes the daemon down; the namespace is left for cleanup.
        deadline = time.monotonic() + 10
        while alive(seeder.info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(alive(seeder.info["pid"]))
        self.assertIn(ns, harness_state()[0])
        status, result, err = run(tool("netns.py") + ["cleanup", "--run", RUN])
        self.assertEqual(status, 0, err)
        self.assertEqual(result["deleted_netns"], [ns])
        self.assertEqual(harness_state(), (set(), set(), set()))

    def test_netns_create_gives_a_reachable_namespace_and_delete_removes_it(self):
        status, ns, err = run(tool("netns.py") + ["create"])
        self.assertEqual(status, 0, err)
        self.assertIn(ns["netns"], harness_state()[0])
        # The namespace address is routed through the harness veth, from its root-side address.
        self.assertEqual(common.source_address_for(ns["ns_address"]), ns["root_address"])
        status, _, err = run(tool("netns.py") + ["delete", ns["netns"]])
        self.assertEqual(status, 0, err)
        self.assertNotIn(ns["netns"], harness_state()[0])

    def test_opentracker_serves_a_hash_holding_a_space_byte_over_http(self):
        # Regression: the HTTP announce sent 0x20 as "+", which opentracker does not decode.
        infohash = "cee7f9991e3fe05e93f720d56cf8e247c0f887da"  # byte 13 is 0x20
        tracker = self.start(tool("tracker.py") + ["start", "--http-port", "0", "--udp-port", "0",
                                                   "--whitelist", infohash, "--timeout", "20"])
        status, result, err = run(tool("tracker.py") + ["announce", tracker.info["http"], "--infohash",
                                                        infohash, "--port", "6881"])
        self.assertEqual(status, 0, err)
        self.assertIn("peers", result)
        self.assertEqual(tracker.close(), 0)

    def test_libtorrent_download_count_runs_several_leechers_each_into_its_own_folder(self):
        seeder = self.start(tool("lt.py") + ["seed", self.torrent, self.data])
        status, result, err = run(tool("lt.py") + ["download", self.torrent, self.out, "--peer",
                                                   seeder.info["peers"][0], "--count", "3", "--timeout", "60"])
        self.assertEqual(status, 0, err)
        self.assertEqual(result["sessions"], 3)
        for i in (1, 2, 3):
            self.assertSamePayload(os.path.join(self.out, str(i)))
        self.assertEqual(seeder.close(), 0)

    def test_libtorrent_fetch_is_ready_first_and_gets_the_torrent_from_a_seeder_started_after(self):
        port = common.free_tcp_udp_port()
        fetch = self.start(tool("lt.py") + ["fetch", self.torrent, self.out, "--peer", f"127.0.0.1:{port}",
                                            "--timeout", "60"])
        self.assertEqual(fetch.info, {"ready": True})
        # Refused until the seeder listens: the fetch keeps dialling.
        time.sleep(0.5)
        seeder_started = time.monotonic()
        seeder = self.start(tool("lt.py") + ["seed", self.torrent, self.data, "--port-base", str(port)])
        ready, _, _ = select.select([fetch.proc.stdout], [], [], 60)
        result = json.loads(fetch.proc.stdout.readline()) if ready else {}
        self.assertEqual(result.get("complete"), True, result)
        self.assertGreater(result["finished"]["payload"], seeder_started)
        self.assertEqual(fetch.proc.wait(10), 0)
        self.assertSamePayload(self.out)
        self.assertEqual(seeder.close(), 0)

    def test_libtorrent_download_of_several_torrents_runs_a_leecher_each(self):
        other = os.path.join(self.tmp, "other")
        os.makedirs(os.path.join(other, "second"), exist_ok=True)
        with open(os.path.join(other, "second", "x.bin"), "wb") as f:
            f.write(os.urandom(300000))
        second = os.path.join(self.tmp, "second.torrent")
        status, _, err = run(tool("lt.py") + ["create", os.path.join(other, "second"), "-o", second, "--v1"])
        self.assertEqual(status, 0, err)
        first_seeder = self.start(tool("lt.py") + ["seed", self.torrent, self.data])
        second_seeder = self.start(tool("lt.py") + ["seed", second, other])
        status, result, err = run(tool("lt.py") + [
            "download", self.torrent, second, self.out, "--peer", first_seeder.info["peers"][0],
            "--peer", second_seeder.info["peers"][0], "--timeout", "60"])
        self.assertEqual(status, 0, err)
        self.assertEqual(result["sessions"], 2)
        self.assertSamePayload(self.out)
        self.assertTrue(filecmp.cmp(os.path.join(other, "second", "x.bin"),
                                    os.path.join(self.out, "second", "x.bin"), shallow=False))
        self.assertEqual(first_seeder.close(), 0)
        self.assertEqual(second_seeder.close(), 0)

    # --- DHT lab ---

    def test_dht_lab_leads_a_leecher_from_a_magnet_and_one_node_to_the_seeder(self):
        started = time.monotonic()
        lab = self.start(tool("dht_lab.py") + ["start", "--nodes", "16", "--seed", self.torrent, self.data],
                         timeout=90)
        info = lab.info
        self.assertEqual(len(info["nodes"]), 16)
        # A /24 each (libtorrent keeps one node per /24 by default), in a namespace each, and the root
        # namespace on a /24 of its own on the lab's bridge.
        subnets = {node.split(":")[0].rsplit(".", 1)[0] for node in info["nodes"]}
        self.assertEqual(len(subnets), 16)
        self.assertNotIn(info["root_address"].rsplit(".", 1)[0], subnets)
        self.assertGreaterEqual(len(harness_state()[0]), 17)
        self.assertEqual(len(set(info["node_ids"])), 16)
        self.assertEqual(info["seeder"], info["nodes"][0])
        self.assertEqual(info["infohash"], self.created["infohash_v1"])
        # Nothing in the link but the hash and the name: only the DHT can lead to the seeder.
        self.assertEqual(info["magnet"], f"magnet:?xt=urn:btih:{info['infohash']}&dn=payload")
        self.assertTrue(info["stored_on"])
        # Bootstrapped from one node that neither seeds nor (necessarily) stores the announce.
        status, result, err = run(tool("dht_lab.py") + ["fetch", info["magnet"], self.out, "--bootstrap",
                                                        info["nodes"][7], "--timeout", "60"], timeout=90)
        self.assertEqual(status, 0, err)
        self.assertTrue(result["ok"])
        self.assertIn(info["seeder"], result["peers"])
        self.assertIsNotNone(result["metadata_seconds"])
        self.assertSamePayload(self.out)
        # A hash nobody announced: the leecher gives up at its timeout, and says so.
        unknown = "magnet:?xt=urn:btih:" + "ab" * 20
        status, result, _ = run(tool("dht_lab.py") + ["fetch", unknown, tempfile.mkdtemp(dir=self.tmp),
                                                      "--bootstrap", info["nodes"][3], "--timeout", "3"])
        self.assertEqual((status, result["ok"], result["metadata_seconds"]), (1, False, None))
        self.assertEqual(lab.close(), 0)
        self.assertLess(time.monotonic() - started, 60)

    def test_linknet_joins_shaped_peers_through_a_bridge_and_delete_removes_everything(self):
        status, links, err = run(tool("linknet.py") + ["create", "--peers", "2", "--rate", "200m",
                                                       "--rtt-ms", "4"])
        self.assertEqual(status, 0, err)
        names = [links["hub"]] + [peer["netns"] for peer in links["peers"]]
        try:
            self.assertTrue(set(names) <= harness_state()[0])
            first, second = links["peers"]
            # Each peer reaches the other over the bridge, and only there.
            probe = ["ip", "netns", "exec", first["netns"], PYTHON, "-c",
                     "import socket,sys; s=socket.create_connection((sys.argv[1], 9), 2)", second["address"]]
            refused = subprocess.run(probe, capture_output=True, text=True, timeout=20)
            self.assertIn("ConnectionRefused", refused.stderr)  # a RST from the peer: it is reachable
            qdiscs = subprocess.run(["ip", "netns", "exec", first["netns"], "tc", "qdisc", "show"],
                                    capture_output=True, text=True, timeout=20).stdout
            self.assertIn("tbf", qdiscs)
            self.assertEqual(links["delay_applied"], "netem" in qdiscs)
            if not links["delay_applied"]:
                self.assertIn("netem", links["note"])
        finally:
            status, _, err = run(tool("linknet.py") + ["delete", *names])
        self.assertEqual(status, 0, err)
        self.assertFalse(set(names) & harness_state()[0])


if __name__ == "__main__":
    unittest.main()
