#!/usr/bin/python3
"""An HTTP server for torrent-add by URL, as indexers (Jackett, Prowlarr) serve them (stdlib only).

  torrent_url_server.py TORRENT MAGNET
      → {"url": "http://127.0.0.1:PORT"} once listening; serves until stdin closes or SIGTERM.

  /file.torrent  the bytes of TORRENT
  /magnet        302 to MAGNET (how indexers hand out magnet links)
  /missing       404
  /huge          200 with 20 MiB of zeros (more than any .torrent a daemon should take)
  /private.torrent  the bytes of TORRENT with the cookie "pass=secret", else 403 (a private tracker's
                 indexer); /elsewhere 302 to /private.torrent on 127.0.0.2 (another host: no cookie)
"""
import http.server, json, os, signal, sys, threading

TORRENT, MAGNET = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/private.torrent" and "pass=secret" not in self.headers.get("Cookie", ""):
            self.send_error(403)
        elif self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:%d/private.torrent" % self.server.server_address[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path in ("/file.torrent", "/private.torrent"):
            body = open(TORRENT, "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-bittorrent")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/magnet":
            self.send_response(302)
            self.send_header("Location", MAGNET)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(20 << 20))
            self.end_headers()
            try:
                for _ in range(20 * 16):
                    self.wfile.write(bytes(64 << 10))
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1]}), flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
server.serve_forever()
