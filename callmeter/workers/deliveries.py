"""The webhook sender: delivers the outbox's events after their transaction committed.

Each round claims the due deliveries (leased, so several processes never take the same one), sends
them concurrently with one HTTP client, then records every attempt. A non-2xx answer, a timeout or
a refused connection is retried with exponential backoff and jitter (first retry within 10 s) for
24 h; after that the delivery is `failed`. An endpoint failing for 5 days in a row is disabled. A
crash at any point only repeats a send (the same `webhook-id`, which receivers dedupe on).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

import aiohttp

from callmeter.db import deliveries as outbox_deliveries
from callmeter.db.deliveries import FAILED, PENDING, SUCCEEDED, Claim, Outcome
from callmeter.errors import ConfigError
from callmeter.outbound.webhooks import Attempt, new_session, send
from callmeter.resolvers.services import Services
from callmeter.sealing import unseal

log = logging.getLogger("callmeter.webhooks.out")

RETRY_FOR = timedelta(hours=24)
DISABLE_AFTER = timedelta(days=5)
IDLE_POLL_SECONDS = 0.1
CONCURRENT_SENDS = 64  # requests in flight at once, over all endpoints
_DELAYS = (5, 30, 120, 600, 1800, 3600, 7200)  # seconds, then every 4 hours
_LATER = 4 * 3600


_JITTER = random.Random()


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt, with ±20 % jitter (the first: 4-6 s)."""
    base = _DELAYS[attempts - 1] if attempts <= len(_DELAYS) else _LATER
    return timedelta(seconds=base * _JITTER.uniform(0.8, 1.2))


def decide(claim: Claim, attempt: Attempt, now: datetime) -> Outcome:
    """What an attempt means for its delivery and its endpoint. Pure."""
    number = claim.attempts + 1
    common = {
        "delivery_id": claim.delivery_id,
        "endpoint_id": claim.endpoint_id,
        "attempt": number,
        "at": now,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }
    if attempt.ok:
        return Outcome(
            **common,
            status=SUCCEEDED,
            next_attempt_at=None,
            endpoint_failing_since=None,
            disable_endpoint=False,
        )
    failing_since = claim.failing_since or now
    retry_at = now + retry_delay(number)
    gives_up = retry_at - claim.created_at > RETRY_FOR
    return Outcome(
        **common,
        status=FAILED if gives_up else PENDING,
        next_attempt_at=None if gives_up else retry_at,
        endpoint_failing_since=failing_since,
        disable_endpoint=now - failing_since >= DISABLE_AFTER,
    )


async def _attempt(
    services: Services, client: aiohttp.ClientSession, claim: Claim, slots: asyncio.Semaphore
) -> Attempt:
    async with slots:
        return await _send(services, client, claim)


async def _send(services: Services, client: aiohttp.ClientSession, claim: Claim) -> Attempt:
    settings = services.settings
    try:
        secret = unseal(str(settings.jwt_secret), claim.sealed_secret)
    except ConfigError as exc:
        return Attempt(False, None, str(exc), 0)
    return await send(
        client,
        url=claim.url,
        secret=secret,
        event_id=claim.event_id,
        body=claim.body,
        allow_http=settings.webhooks_allow_http,
    )


async def deliver_due(services: Services, client: aiohttp.ClientSession) -> int:
    """One round: claim, send, record. How many deliveries were attempted."""
    async with services.db.transaction() as conn:
        claims = await outbox_deliveries.claim_due(conn, now=datetime.now(UTC))
    if not claims:
        return 0
    slots = asyncio.Semaphore(CONCURRENT_SENDS)
    attempts = await asyncio.gather(*(_attempt(services, client, claim, slots) for claim in claims))
    now = datetime.now(UTC)
    outcomes = [decide(claim, attempt, now) for claim, attempt in zip(claims, attempts, strict=True)]
    async with services.db.transaction() as conn:
        recorded = await outbox_deliveries.record(conn, outcomes, leased_until=claims[0].leased_until)
    if recorded < len(outcomes):
        log.warning("webhook round: %s outcome(s) came after their lease", len(outcomes) - recorded)
    for claim, outcome in zip(claims, outcomes, strict=True):
        if outcome.status != SUCCEEDED:
            log.warning(
                "webhook %s to endpoint %s: attempt %s failed (%s)%s",
                claim.event_id,
                claim.endpoint_id,
                outcome.attempt,
                outcome.error,
                "; given up" if outcome.status == FAILED else "",
            )
        if outcome.disable_endpoint:
            log.error("webhook endpoint %s disabled: failing for 5 days", claim.endpoint_id)
    return len(claims)


async def deliver_periodically(services: Services) -> None:
    """The `serve` background task: rounds back to back while there is work, polling when idle."""
    async with new_session(CONCURRENT_SENDS) as client:
        while True:
            try:
                if await deliver_due(services, client):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage, say: the leases expire and the next round retries
                log.exception("webhook delivery round failed")
                await asyncio.sleep(1)
            await asyncio.sleep(IDLE_POLL_SECONDS)
