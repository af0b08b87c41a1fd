"""A local HTTP server answering JSON from a handler function: the base of the stand-ins for the
outside services the tests cannot reach (Stripe, Twilio's REST API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (method, path, headers, body) -> (status, JSON payload)
Handle = Callable[[str, str, Mapping[str, str], bytes], tuple[int, object]]


def serve_json(handle: Handle, port: int = 0) -> ThreadingHTTPServer:
    """Start serving on `port` (0: a free one) of 127.0.0.1 in a daemon thread; `shutdown()` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = handle(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def base_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"
