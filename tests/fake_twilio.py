"""A local stand-in for Twilio's REST API (calls fetch and update), recording what the real `twilio`
client sent."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.fake_http import serve_json


@dataclass
class FakeTwilio:
    calls: dict[str, dict] = field(default_factory=dict)  # CallSid -> the JSON Twilio would give
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, basic-auth user
    hang_ups: list[str] = field(default_factory=list)  # CallSids ended by `update(status="completed")`
    failures_left: int = 0  # answer this many updates with a 500 first

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
        sid = path.rsplit("/", 1)[-1].removesuffix(".json")
        if method == "POST":
            return _update(fake, sid, parse_qs(body.decode()))
        found = fake.calls.get(sid)
        if found:
            return 200, found
        return 404, {"code": 20404, "message": "not found", "status": 404}

    return fake, serve_json(handle)


def _update(fake: FakeTwilio, sid: str, form: dict[str, list[str]]) -> tuple[int, object]:
    if fake.failures_left > 0:
        fake.failures_left -= 1
        return 500, {"code": 20500, "message": "internal error", "status": 500}
    if fake.calls.get(sid, {}).get("status") == "completed":
        return 400, {"code": 21220, "message": "Call is not in-progress", "status": 400}
    if form.get("Status") == ["completed"]:
        fake.hang_ups.append(sid)
        fake.call(sid, "completed", None)
    return 200, fake.calls.get(sid) or {"sid": sid, "status": "in-progress"}
