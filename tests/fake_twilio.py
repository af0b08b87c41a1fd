"""A local stand-in for Twilio's REST API (calls fetch), recording what the real `twilio` client sent."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.fake_http import serve_json


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

    def handle(method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, object]:
        header = headers.get("Authorization", "")
        user = base64.b64decode(header.split(" ", 1)[1]).decode().split(":")[0] if " " in header else ""
        fake.requests.append((method, path, user))
        found = fake.calls.get(path.rsplit("/", 1)[-1].removesuffix(".json"))
        if found:
            return 200, found
        return 404, {"code": 20404, "message": "not found", "status": 404}

    return fake, serve_json(handle)
