"""Sending one webhook delivery: where it may go, how it is signed, and what the answer means.

Signed per the Standard Webhooks specification with the `standardwebhooks` package: headers
`webhook-id` (the event's id, the same on every retry), `webhook-timestamp` and `webhook-signature`.
URLs must be `https://` and resolve to public addresses only, unless `WEBHOOKS_ALLOW_HTTP=true`
(local use and tests), so a webhook cannot be pointed into the operator's own network; the check is
made when the endpoint is created and again before each send (a name may resolve elsewhere later).
Redirects are never followed; at most 64 KiB of an answer is read; 10 s is the timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook

from callmeter.errors import BadInputError
from callmeter.inputs import absolute_url

TIMEOUT_SECONDS = 10
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "callmeter-webhooks/1"


def check_url(url: str, *, allow_http: bool) -> str:
    """The URL if a webhook may be sent to it (its form only; `check_address` resolves it)."""
    if not allow_http and url[:7].lower() == "http://":
        raise BadInputError("url must be https:// (http:// only with WEBHOOKS_ALLOW_HTTP=true)")
    absolute_url(url, name="url", schemes=("https", "http") if allow_http else ("https",))
    return url


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_address(url: str, *, allow_http: bool) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local or other non-public
    address, unless WEBHOOKS_ALLOW_HTTP=true."""
    if allow_http:
        return
    parts = urlsplit(url)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443)
    except socket.gaierror as exc:
        raise BadInputError(f"url's host {parts.hostname!r} does not resolve: {exc.strerror}") from None
    private = [info[4][0] for info in found if not _is_public(info[4][0])]
    if private:
        raise BadInputError(f"url's host resolves to a non-public address ({private[0]}): refused")


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def signed_headers(secret: str, *, event_id: str, body: str, at: datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


def new_session(connections: int) -> aiohttp.ClientSession:
    """The sender's HTTP client: aiohttp, whose pool stays cheap with many requests in flight
    (httpx's spent most of the sender's CPU on pool bookkeeping: bench/README.md)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
        auto_decompress=False,
    )


async def send(
    session: aiohttp.ClientSession, *, url: str, secret: str, event_id: str, body: str, allow_http: bool
) -> Attempt:
    """POST one event; a 2xx answer is success, anything else (or no answer in 10 s) a failure."""
    started = time.perf_counter()

    def took() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        await check_address(url, allow_http=allow_http)
        headers = signed_headers(secret, event_id=event_id, body=body, at=datetime.now(UTC))
        async with session.post(url, data=body.encode(), headers=headers, allow_redirects=False) as answer:
            await answer.content.read(MAX_ANSWER_BYTES)
            code = answer.status
    except BadInputError as exc:
        return Attempt(False, None, str(exc), took())
    except TimeoutError:
        return Attempt(False, None, f"no answer in {TIMEOUT_SECONDS} s", took())
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500], took())
    return Attempt(200 <= code < 300, code, None if 200 <= code < 300 else f"answered {code}", took())
