"""The webhook sender's pure policy: backoff with jitter, giving up after 24 h, disabling an endpoint
failing for 5 days, and the event bodies' shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from callmeter.db.deliveries import FAILED, PENDING, SUCCEEDED, Claim
from callmeter.notifications import EventType, event_body
from callmeter.outbound.webhooks import Attempt, signed_headers
from callmeter.workers.deliveries import decide, retry_delay

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def claim(*, attempts: int = 0, age: timedelta = timedelta(0), failing_for: timedelta | None = None) -> Claim:
    return Claim(
        delivery_id=1,
        endpoint_id=2,
        url="https://example.com/hook",
        sealed_secret="x",
        event_id="evt_1",
        body="{}",
        attempts=attempts,
        created_at=NOW - age,
        failing_since=None if failing_for is None else NOW - failing_for,
        leased_until=NOW + timedelta(seconds=90),
    )


FAILURE = Attempt(False, 503, "answered 503", 12)


def test_the_first_retry_comes_within_10_s_and_later_ones_grow_with_jitter():
    first = [retry_delay(1) for _ in range(200)]
    assert all(timedelta(seconds=4) <= delay <= timedelta(seconds=6) for delay in first)
    assert len(set(first)) > 100  # jittered
    assert all(retry_delay(n + 1) > retry_delay(n) * 0.6 for n in range(1, 7))
    assert timedelta(hours=3) <= retry_delay(30) <= timedelta(hours=5)


def test_a_success_clears_the_endpoints_failure_and_a_failure_is_retried():
    done = decide(claim(attempts=2, failing_for=timedelta(hours=1)), Attempt(True, 204, None, 3), NOW)
    assert (done.status, done.attempt, done.endpoint_failing_since, done.next_attempt_at) == (
        SUCCEEDED,
        3,
        None,
        None,
    )
    again = decide(claim(), FAILURE, NOW)
    assert again.status == PENDING and again.endpoint_failing_since == NOW
    assert NOW + timedelta(seconds=4) <= again.next_attempt_at <= NOW + timedelta(seconds=6)


def test_deliveries_are_retried_for_24_hours_then_failed():
    assert decide(claim(attempts=8, age=timedelta(hours=19)), FAILURE, NOW).status == PENDING
    gave_up = decide(claim(attempts=12, age=timedelta(hours=23)), FAILURE, NOW)
    assert gave_up.status == FAILED and gave_up.next_attempt_at is None


def test_an_endpoint_failing_for_5_days_is_disabled():
    assert not decide(claim(failing_for=timedelta(days=4, hours=23)), FAILURE, NOW).disable_endpoint
    assert decide(claim(failing_for=timedelta(days=5)), FAILURE, NOW).disable_endpoint


def test_bodies_are_the_documented_shape_and_verify_with_standardwebhooks():
    body = event_body(
        event_id="evt_9", type=EventType.BALANCE_LOW, user_id=7, data={"balance_usd": 1}, at=NOW
    )
    assert json.loads(body) == {
        "id": "evt_9",
        "type": "balance.low",
        "created_at": "2026-12-03T12:00:00Z",
        "data": {"user_id": "7", "balance_usd": 1},
    }
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signed_headers(secret, event_id="evt_9", body=body, at=datetime.now(UTC))
    assert Webhook(secret).verify(body, headers)["id"] == "evt_9"
    assert headers["webhook-signature"].startswith("v1,")
