#!/usr/bin/python3
"""Network namespaces for interop tests (root only).

Transmission 3.00 ignores peers at 127.x and keeps one peer per IP, so tests that need it, or need
several distinct peer addresses, put clients in namespaces. Namespace plk-N holds veth plkN-n with
10.77.N.2/24; its pair plkN-r stays in the root namespace with 10.77.N.1/24 (and, if asked, extra
addresses 10.77.N.101, .102, ... for several root-side peers). Nothing is routed beyond the pair.

  create [--root-addresses K]
      → {"netns": "plk-N", "index": N, "ns_address": "10.77.N.2", "root_address": "10.77.N.1",
         "root_addresses": [...], "root_veth": "plkN-r", "ns_veth": "plkN-n"}; the namespace stays
        until `delete` (run a command inside with `ip netns exec plk-N CMD`)
  delete NAME...     kills what still runs inside, deletes the namespace and its veth pair
                     → {"deleted": [...]}
  list               → {"netns": [harness namespaces], "veths": [harness veths in the root namespace]}
  cleanup            after a killed run: deletes every plk-* namespace and plkN-[rn] veth, kills the
                     processes inside them and any process started from a potluck-interop-*
                     temporary directory (e.g. an orphaned opentracker), removes those directories
                     → {"deleted_netns": [...], "deleted_veths": [...], "killed": [pids], "removed": [dirs]}
                     Do not run it while another harness run is in progress.

Exit status: 0 success, 1 failure, 2 usage error.
"""

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def harness_namespaces():
    return [n for n in common.netns_names() if n.startswith(common.NS_PREFIX)]


def harness_veths():
    names = []
    for line in common.ip("-o", "link").stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if common.VETH_RE.match(name):
            names.append(name)
    return names


def stray_processes():
    """Processes whose command line names a harness temporary directory (never this process)."""
    marker = os.path.join(tempfile.gettempdir(), common.TMP_PREFIX).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def cmd_create(args):
    common.emit(common.netns_create(args.root_addresses))
    return 0


def cmd_delete(args):
    for name in args.names:
        if not name.startswith(common.NS_PREFIX):
            raise common.HarnessError(f"{name} is not a harness namespace ({common.NS_PREFIX}N)")
    for name in args.names:
        common.netns_delete(name)
    common.emit({"deleted": args.names})
    return 0


def cmd_list(_args):
    common.emit({"netns": harness_namespaces(), "veths": harness_veths()})
    return 0


def cmd_cleanup(_args):
    killed = []
    namespaces = harness_namespaces()
    for name in namespaces:
        killed += [int(p) for p in common.ip("netns", "pids", name, check=False).stdout.split()]
        common.netns_delete(name)
    for pid in stray_processes():
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    veths = harness_veths()
    for name in veths:
        common.ip("link", "del", name, check=False)
    removed = glob.glob(os.path.join(tempfile.gettempdir(), common.TMP_PREFIX + "*"))
    for path in removed:
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False, timeout=60)
    left = harness_namespaces() + harness_veths()
    common.emit({"deleted_netns": namespaces, "deleted_veths": veths, "killed": killed, "removed": removed})
    if left:
        raise common.HarnessError(f"could not delete: {' '.join(left)}")
    return 0


def main():
    parser = argparse.ArgumentParser(prog="netns.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create", help="a namespace with a veth pair to the root namespace",
        description="a namespace with a veth pair to the root namespace; output and exit status: netns.py --help")
    p.add_argument("--root-addresses", type=int, default=0, metavar="K",
                   help="extra root-side addresses 10.77.N.101.. (0..100)")
    p.set_defaults(func=cmd_create)
    p = sub.add_parser("delete", help="delete harness namespaces",
        description="delete harness namespaces; output and exit status: netns.py --help")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_delete)
    sub.add_parser("list", help="harness namespaces and veths",
        description="harness namespaces and veths; output and exit status: netns.py --help").set_defaults(func=cmd_list)
    sub.add_parser("cleanup", help="remove everything a killed run left behind",
        description="remove everything a killed run left behind; output and exit status: netns.py --help").set_defaults(func=cmd_cleanup)
    args = parser.parse_args()
    if getattr(args, "root_addresses", 0) not in range(0, 101):
        parser.error("--root-addresses must be 0..100")
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
