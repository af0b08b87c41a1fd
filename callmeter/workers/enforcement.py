"""Enforcement: end an enforcing customer's calls in progress when their spend reaches the cap or
their available balance reaches 0, through Twilio's REST API, within seconds.

Each pass (every ENFORCE_INTERVAL_SECONDS, by one process of a deployment at a time) decides under
the customer's billing lock which calls to end and records that durably (`db/terminations.py`, the
reason on the call), then sends the hang-ups that are due. A request Twilio refuses or that fails is
retried with backoff and logged; a call Twilio says has ended already needs nothing more. Requests
are sent outside any transaction under a lease; a crash between Twilio's answer and the commit only
repeats, after the lease, a hang-up of an ended call, which Twilio refuses harmlessly, so no call is
ever ended twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from twilio.base.exceptions import TwilioRestException

from callmeter.billing.allowance import reason_to_end
from callmeter.billing.usage import summarize
from callmeter.call_lifecycle import CallStatus
from callmeter.db import customers, terminations, usage, watch
from callmeter.db.locks import job_lock, lock_user_billing
from callmeter.db.spend import spend_state
from callmeter.outbound.twilio_api import CALL_NOT_IN_PROGRESS, hang_up, twilio_client
from callmeter.resolvers.services import Services

log = logging.getLogger("callmeter.enforcement")

MAX_BACKOFF_SECONDS = 60


@dataclass(frozen=True)
class EnforcementReport:
    decided: int = 0  # calls newly decided to end
    sent: int = 0  # hang-ups Twilio took
    failed: int = 0  # hang-ups to try again


async def decide_terminations(services: Services, *, now: datetime) -> int:
    """For each customer with calls in progress: tell the operator when the available balance or
    the month's spend reaches a limit, running costs counted, and if they enforce, end the calls."""
    decided = 0
    async with services.db.connection() as conn:
        users = await terminations.watched_users(conn)
    for user_id in users:
        async with services.db.transaction() as conn:
            await lock_user_billing(conn, user_id=user_id)
            customer = await customers.fetch_customer(conn, user_id=user_id)
            if customer is None:
                continue
            state = await spend_state(conn, default_plan=services.default_plan, customer=customer, now=now)
            spend = state.months[state.current].spend_now
            customer = await watch.available_checked(
                conn, customer=customer, available_usd=state.available_usd, now=now
            )
            cap = customer.limits.monthly_spend_cap_usd
            if cap is not None and spend >= cap and not customer.cap_reached_sent(state.current):
                totals = await usage.fetch_month(conn, user_id=user_id, month=state.current)
                summary = summarize(totals, state.months[state.current].plan)
                customer = await watch.spend_checked(
                    conn, customer=customer, summary=summary, spend_usd=spend, now=now
                )
            reason = reason_to_end(customer.limits, available_usd=state.available_usd, spend_usd=spend)
            if reason is None or not state.calls:
                continue
            calls = [(call.id, call.call_sid) for call in state.calls]
            added = await terminations.decide(conn, user_id=user_id, calls=calls, reason=reason, now=now)
        if added:
            decided += added
            log.warning("user %s: ending %s call(s) in progress: %s", user_id, added, reason.value)
    return decided


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s ... up to a minute, with jitter so retries of many calls spread out."""
    seconds = min(MAX_BACKOFF_SECONDS, 2 ** max(0, attempts - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


HANG_UP_LEASE = timedelta(seconds=60)  # longer than a request may take (twilio_api.TIMEOUT_SECONDS)
CONCURRENT_HANG_UPS = 4


@dataclass(frozen=True)
class _Result:
    error: str | None = None  # None: taken
    note: str | None = None  # taken, with something to say


def _hang_up(services: Services, due: terminations.Termination) -> _Result:
    """One request to Twilio (blocking: runs on a thread, with a client of its own)."""
    if due.call_status is not CallStatus.ACTIVE:
        return _Result(note="the call had ended")
    client = twilio_client(services.settings)
    if client is None:
        return _Result(error="no Twilio credentials (TWILIO_ACCOUNT_SID) to end the call with")
    try:
        hang_up(client, due.call_sid)
    except TwilioRestException as exc:
        if exc.code == CALL_NOT_IN_PROGRESS:
            return _Result(note="ended already")
        return _Result(error=f"Twilio answered {exc.status}: {exc.msg}")
    except OSError as exc:  # requests' connection errors and timeouts are OSErrors
        return _Result(error=f"Twilio could not be reached: {exc}")
    return _Result()


async def send_hang_ups(services: Services, *, now: datetime) -> tuple[int, int]:
    """Send the hang-ups that are due, a few at a time and outside any transaction (a slow Twilio
    holds no lock); (taken, to retry)."""
    async with services.db.transaction() as conn:
        due = await terminations.claim_due(conn, now=now, lease_until=now + HANG_UP_LEASE)
    if not due:
        return 0, 0
    slots = asyncio.Semaphore(CONCURRENT_HANG_UPS)

    async def attempt(termination: terminations.Termination) -> _Result:
        async with slots:
            return await asyncio.to_thread(_hang_up, services, termination)

    results = await asyncio.gather(*(attempt(termination) for termination in due))
    sent = failed = 0
    at = datetime.now(UTC)
    async with services.db.transaction() as conn:
        for termination, result in zip(due, results, strict=True):
            log_extra = {"call_sid": termination.call_sid}
            if result.error is None:
                await terminations.mark_sent(conn, call_id=termination.call_id, at=at, note=result.note)
                if result.note is None:
                    sent += 1
                    log.info("call %s: ended (%s)", termination.call_sid, termination.reason, extra=log_extra)
                continue
            attempts = termination.attempts + 1
            await terminations.mark_failed(
                conn,
                call_id=termination.call_id,
                attempts=attempts,
                retry_at=at + backoff(attempts),
                error=result.error,
            )
            failed += 1
            log.error(
                "call %s: hang-up attempt %s failed: %s",
                termination.call_sid,
                attempts,
                result.error,
                extra=log_extra,
            )
    return sent, failed


async def enforce_once(services: Services) -> EnforcementReport:
    now = datetime.now(UTC)
    decided = await decide_terminations(services, now=now)
    sent, failed = await send_hang_ups(services, now=now)
    return EnforcementReport(decided, sent, failed)


async def enforce_periodically(services: Services) -> None:
    """The `serve` background task: a pass every interval, by one process of a deployment at a time."""
    while True:
        await asyncio.sleep(services.settings.enforce_interval_seconds)
        try:
            async with job_lock(services.db, name="enforcement") as mine:
                if mine:
                    await enforce_once(services)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next pass tries again; the service keeps running
            log.exception("enforcement pass failed")
