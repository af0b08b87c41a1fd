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

from twilio.base.exceptions import TwilioRestException

from callmeter.call_lifecycle import CallEventKind
from callmeter.db import calls
from callmeter.db.locks import job_lock
from callmeter.db.recording import record_status_callback
from callmeter.outbound.twilio_api import fetch_call, final_event, twilio_client
from callmeter.resolvers.services import Services
from callmeter.rows import CallRow

log = logging.getLogger("callmeter.reconciliation")


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    closed: int = 0
    still_active: int = 0
    flagged_stale: int = 0
    errors: int = 0


async def reconcile_stale_calls(services: Services, *, idle_seconds: float) -> ReconcileReport:
    db = services.db
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        stale = await calls.stale_calls(conn, idle_since=now - timedelta(seconds=idle_seconds))
        if stale:
            await calls.mark_reconciled(conn, call_ids=[call.id for call in stale], at=now)
    client = twilio_client(services.settings)
    closed = still_active = flagged = errors = 0
    for call in stale:
        if client is None:
            flagged += await _flag(services, call, now, "no Twilio credentials (TWILIO_ACCOUNT_SID) to ask")
            continue
        try:
            record = await asyncio.to_thread(fetch_call, client, call.call_sid)
        except TwilioRestException as exc:
            if exc.status == 404:
                flagged += await _flag(services, call, now, "Twilio does not know this call")
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
            db,
            event=event,
            form=form,
            agent_id=None,
            default_plan=services.default_plan,
            default_calendar=services.settings.default_calendar,
            bus=services.bus,
        )
        if outcome.change is CallEventKind.ENDED:
            closed += 1
            log.info(
                "call %s: closed by reconciliation as %s, %ss",
                call.call_sid,
                event.call_status,
                event.call_duration,
                extra={"call_sid": call.call_sid},
            )
    return ReconcileReport(len(stale), closed, still_active, flagged, errors)


async def _flag(services: Services, call: CallRow, now: datetime, why: str) -> int:
    async with services.db.transaction() as conn:
        await calls.mark_stale(conn, call_id=call.id, at=now)
    log.warning("call %s: flagged stale: %s", call.call_sid, why, extra={"call_sid": call.call_sid})
    return 1


async def reconcile_periodically(services: Services) -> None:
    """The `serve` background task: one pass every interval, by one process at a time."""
    settings = services.settings
    while True:
        await asyncio.sleep(settings.reconcile_interval_seconds)
        try:
            async with job_lock(services.db, name="reconciliation") as mine:
                if not mine:
                    continue  # another process of this deployment runs this pass
                report = await reconcile_stale_calls(services, idle_seconds=settings.reconcile_after_seconds)
            if report.checked:
                log.info("reconciliation: %s", report)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next pass tries again; the service keeps running
            log.exception("reconciliation pass failed")
