"""The Envoy suite's upstream: answers every request with 200 and, as JSON, the method, path,
headers (names lower-cased) and body it received, so a test sees what Envoy let through.

Usage: python3 upstream.py PORT   (listens on 127.0.0.1:PORT; GET /ready answers 200)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length: Envoy keeps its upstream connections alive.
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: with Nagle's algorithm the second waits for the
    # peer's delayed ACK (40 ms), which would swamp every latency measured through Envoy.
    disable_nagle_algorithm = True

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        echo = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(echo)))
        self.end_headers()
        self.wfile.write(echo)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

    def log_message(self, *args):
        # One line per request would slow the bench and fill the log.
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
