"""A local stand-in for Twilio's REST API (calls fetch), recording what the real `twilio` client sent."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeTwilio:
    calls: dict[str, dict] = field(default_factory=dict)  # CallSid -> the JSON Twilio would give
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, basic-auth user

    def call(self, sid: str, status: str, duration: int | None, end_time: str | None = None) -> None:
        self.calls[sid] = {
            "sid": sid,
            "status": status,
            "duration": None if duration is None else str(duration),
            "end_time": end_time,
            "start_time": None,
            "account_sid": "AC" + "f" * 32,
        }


def start_fake_twilio() -> tuple[FakeTwilio, ThreadingHTTPServer]:
    fake = FakeTwilio()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            header = self.headers.get("Authorization", "")
            user = base64.b64decode(header.split(" ", 1)[1]).decode().split(":")[0] if " " in header else ""
            fake.requests.append(("GET", self.path, user))
            sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
            found = fake.calls.get(sid)
            status, payload = (
                (200, found) if found else (404, {"code": 20404, "message": "not found", "status": 404})
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server
