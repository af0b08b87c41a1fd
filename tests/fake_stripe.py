"""A local stand-in for Stripe's API that records what the real `stripe` library sent.

Like Stripe, it answers a repeated Idempotency-Key with the first response, and it can be told to
fail a path once (to test a retried push).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl

from tests.fake_http import serve_json


@dataclass
class StripeRequest:
    method: str
    path: str
    idempotency_key: str | None
    authorization: str | None
    form: dict[str, str]


@dataclass
class FakeStripe:
    requests: list[StripeRequest] = field(default_factory=list)
    fail_once: set[str] = field(default_factory=set)
    _responses: dict[str, tuple[int, dict]] = field(default_factory=dict)
    _counter: int = 0

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict]:
        form = dict(parse_qsl(body.decode()))
        key = headers.get("Idempotency-Key")
        self.requests.append(StripeRequest(method, path, key, headers.get("Authorization"), form))
        if key and key in self._responses:
            return self._responses[key]
        for prefix in list(self.fail_once):
            if path.startswith(prefix) or path.endswith(prefix):
                self.fail_once.discard(prefix)
                return 400, {"error": {"type": "invalid_request_error", "message": "simulated failure"}}
        self._counter += 1
        if path == "/v1/customers":
            response = {"id": f"cus_{self._counter}", "object": "customer"}
        elif path == "/v1/invoices":
            response = {
                "id": f"in_{self._counter}",
                "object": "invoice",
                "status": "draft",
                "customer": form.get("customer"),
            }
        elif path == "/v1/invoiceitems":
            response = {
                "id": f"ii_{self._counter}",
                "object": "invoiceitem",
                "amount": int(form["amount"]),
                "invoice": form.get("invoice"),
            }
        elif path.endswith("/finalize"):
            response = {"id": path.split("/")[3], "object": "invoice", "status": "open"}
        else:
            return 404, {"error": {"type": "invalid_request_error", "message": f"no route {path}"}}
        if key:
            self._responses[key] = (200, response)
        return 200, response

    def posts(self, path_part: str) -> list[StripeRequest]:
        return [request for request in self.requests if path_part in request.path]


def start_fake_stripe() -> tuple[FakeStripe, ThreadingHTTPServer]:
    fake = FakeStripe()
    return fake, serve_json(fake.handle)
