"""Reconciliation: close calls whose final callback never came, from Twilio's own record of them.

A call still `active` long after its last event has probably lost its `completed` callback. Its
final status and duration are fetched with the official `twilio` client and recorded through the
same exactly-once path as a callback (a late real callback afterwards changes nothing). Without
Twilio credentials, or when Twilio does not know the call, it is flagged stale: never guessed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from callmeter.billing.plans import Plan
from callmeter.db import calls
from callmeter.db.bus import LiveBus
from callmeter.db.connection import Database, job_lock
from callmeter.db.recording import record_status_callback
from callmeter.settings import Settings
from callmeter.tracking import FINAL_RANK, RANKS, ChangeKind, StatusCallback

log = logging.getLogger("callmeter.reconciliation")

# The SequenceNumber a reconciled final event is stored under (Twilio's own are small and 0-based).
RECONCILED_SEQUENCE = 999_999_999


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    closed: int = 0
    still_active: int = 0
    flagged_stale: int = 0
    errors: int = 0


class RedirectingHttpClient(TwilioHttpClient):
    """Sends the client's requests to another base URL (a proxy, or a local stand-in in tests)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=15)
        self.base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        target = urlsplit(url)._replace(scheme=self.base.scheme, netloc=self.base.netloc)
        return super().request(method, target.geturl(), *args, **kwargs)


def twilio_client(settings: Settings) -> Client | None:
    if not settings.twilio_account_sid:
        return None
    http = RedirectingHttpClient(settings.twilio_api_base) if settings.twilio_api_base else None
    return Client(settings.twilio_account_sid, str(settings.twilio_auth_tokens[0]), http_client=http)


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


async def reconcile_stale_calls(
    db: Database, settings: Settings, *, default_plan: Plan, bus: LiveBus | None, idle_seconds: float
) -> ReconcileReport:
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        stale = await calls.stale_calls(conn, idle_since=now - timedelta(seconds=idle_seconds))
        if stale:
            await calls.mark_reconciled(conn, call_ids=[call.id for call in stale], at=now)
    client = twilio_client(settings)
    closed = still_active = flagged = errors = 0
    for call in stale:
        if client is None:
            flagged += await _flag(db, call, now, "no Twilio credentials (TWILIO_ACCOUNT_SID) to ask")
            continue
        try:
            record = await asyncio.to_thread(client.calls(call.call_sid).fetch)
        except TwilioRestException as exc:
            if exc.status == 404:
                flagged += await _flag(db, call, now, "Twilio does not know this call")
            else:
                errors += 1
                log.error(
                    "call %s: reconciliation failed: Twilio answered %s",
                    call.call_sid,
                    exc.status,
                    extra={"call_sid": call.call_sid},
                )
            continue
        except OSError as exc:
            errors += 1
            log.error(
                "call %s: reconciliation failed: %s", call.call_sid, exc, extra={"call_sid": call.call_sid}
            )
            continue
        event = final_event(call.call_sid, record, now)
        if event is None:
            still_active += 1
            continue
        form = {
            "CallSid": call.call_sid,
            "CallStatus": event.call_status,
            "Source": "reconciliation",
            "CallDuration": str(event.call_duration or 0),
        }
        outcome = await record_status_callback(
            db, event=event, form=form, agent_id=None, default_plan=default_plan, bus=bus
        )
        if outcome.change is ChangeKind.ENDED:
            closed += 1
            log.info(
                "call %s: closed by reconciliation as %s, %ss",
                call.call_sid,
                event.call_status,
                event.call_duration,
                extra={"call_sid": call.call_sid},
            )
    return ReconcileReport(len(stale), closed, still_active, flagged, errors)


async def _flag(db: Database, call: calls.CallRow, now: datetime, why: str) -> int:
    async with db.transaction() as conn:
        await calls.mark_stale(conn, call_id=call.id, at=now)
    log.warning("call %s: flagged stale: %s", call.call_sid, why, extra={"call_sid": call.call_sid})
    return 1


async def reconcile_periodically(
    db: Database, settings: Settings, *, default_plan: Plan, bus: LiveBus
) -> None:
    """The `serve` background task: one pass every interval, by one process at a time."""
    while True:
        await asyncio.sleep(settings.reconcile_interval_seconds)
        try:
            async with job_lock(db, name="reconciliation") as mine:
                if not mine:
                    continue  # another process of this deployment runs this pass
                report = await reconcile_stale_calls(
                    db,
                    settings,
                    default_plan=default_plan,
                    bus=bus,
                    idle_seconds=settings.reconcile_after_seconds,
                )
            if report.checked:
                log.info("reconciliation: %s", report)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next pass tries again; the service keeps running
            log.exception("reconciliation pass failed")
