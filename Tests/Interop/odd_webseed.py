#!/usr/bin/python3
"""A misbehaving web seed (BEP 19 HTTP file server) for tests (stdlib only), on loopback.

  odd_webseed.py MODE ROOT [--bind ADDR] [--times N]
      → {"url": "http://ADDR:P/", "mode": MODE} once listening; serves the files under ROOT until
        stdin closes or SIGTERM/SIGINT.

Range requests (HTTP/1.1, keep-alive) are answered according to MODE:
  ignore-range  200 with the whole file, whatever range was asked for
  busy          the first N requests get 503 with Retry-After: 1, later ones a correct 206
  close         the first N requests get their headers and half the body, then the connection closes;
                later ones a correct 206
  wrong-bytes   206 with the right headers and length, every byte of the body inverted
N is --times (default 2). The reason a client gives for each can be checked against the mode in tests.
Exit status: 0 success, 1 failure, 2 usage error, 128+N signal N.
"""

import argparse
import http.server
import os
import re
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MODES = ["ignore-range", "busy", "close", "wrong-bytes"]


def make_handler(mode, root, times):
    lock = threading.Lock()
    served = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            with lock:
                served[0] += 1
                early = served[0] <= times
            relative = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            path = os.path.realpath(os.path.join(root, relative))
            if not path.startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(path):
                self.send_error(404)
                return
            with open(path, "rb") as file:
                data = file.read()
            if mode == "busy" and early:
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if mode == "ignore-range" or not match:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            first, last = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
            body = data[first:last + 1]
            if mode == "wrong-bytes":
                body = bytes(byte ^ 0xFF for byte in body)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "close" and early:
                self.wfile.write(body[:len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


def main():
    parser = argparse.ArgumentParser(prog="odd_webseed.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("root", help="the folder whose files are served")
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="loopback address to listen on")
    parser.add_argument("--times", type=int, default=2, metavar="N", help="misbehaving answers (busy, close)")
    args = parser.parse_args()
    common.check_allowed_address(args.bind)
    server = http.server.ThreadingHTTPServer((args.bind, 0), make_handler(args.mode, args.root, args.times))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common.emit({"url": f"http://{args.bind}:{server.server_address[1]}/", "mode": args.mode})
    common.serve_until_stdin_closes()
    server.shutdown()
    return 0


if __name__ == "__main__":
    common.run_tool(main)
