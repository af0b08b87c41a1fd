"""Twilio's REST API through the official `twilio` client: what Twilio knows of a call.

`TWILIO_API_BASE` sends the client's requests to another host (a regional edge, a proxy, or a local
stand-in in tests). The client blocks: run its calls on a thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from callmeter.call_lifecycle import FINAL_RANK, RANKS, StatusCallback
from callmeter.settings import Settings

# The SequenceNumber a reconciled final event is stored under (Twilio's own are small and 0-based).
RECONCILED_SEQUENCE = 999_999_999


TIMEOUT_SECONDS = 10  # per request: a hung Twilio must not hold a pass (the client has none by default)


class RedirectingHttpClient(TwilioHttpClient):
    """Sends the client's requests to another base URL."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=TIMEOUT_SECONDS)
        self.base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        target = urlsplit(url)._replace(scheme=self.base.scheme, netloc=self.base.netloc)
        return super().request(method, target.geturl(), *args, **kwargs)


def twilio_client(settings: Settings) -> Client | None:
    """A client for the account, or None without `TWILIO_ACCOUNT_SID`. Not shared between threads
    (its HTTP session is not thread-safe): one per task."""
    if not settings.twilio_account_sid:
        return None
    base = settings.twilio_api_base
    http = RedirectingHttpClient(base) if base else TwilioHttpClient(timeout=TIMEOUT_SECONDS)
    return Client(settings.twilio_account_sid, str(settings.twilio_auth_tokens[0]), http_client=http)


def fetch_call(client: Client, call_sid: str) -> object:
    """Twilio's record of a call (raises `TwilioRestException`, 404 for a call it does not know)."""
    return client.calls(call_sid).fetch()


def hang_up(client: Client, call_sid: str) -> object:
    """End a call, whatever its state (raises `TwilioRestException`)."""
    return client.calls(call_sid).update(status="completed")


# Twilio's answer when the call has ended already: the hang-up has nothing left to do.
CALL_NOT_IN_PROGRESS = 21220


def final_event(call_sid: str, record: object, now: datetime) -> StatusCallback | None:
    """The final status callback Twilio's record stands for; None while the call goes on."""
    status = str(getattr(record, "status", "") or "")
    if RANKS.get(status) != FINAL_RANK:
        return None
    ended = getattr(record, "end_time", None) or now
    duration = getattr(record, "duration", None)
    return StatusCallback(
        call_sid=call_sid,
        call_status=status,
        sequence_number=RECONCILED_SEQUENCE,
        timestamp=ended.astimezone(UTC) if ended.tzinfo else ended.replace(tzinfo=UTC),
        call_from=None,
        call_to=None,
        direction=None,
        account_sid=None,
        call_duration=int(duration) if duration not in (None, "") else None,
    )
