"""Outgoing webhooks end to end: events from signed callbacks, enforcement and finalization, written to
the outbox in their transaction and delivered by `serve` to a local receiver that verifies every
signature with `standardwebhooks`; retries keep the webhook-id; several processes send each once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from callmeter.db import outbox
from callmeter.notifications import EventType
from tests.factories import (
    add_agent,
    auth,
    call_events,
    free_port,
    graphql,
    open_db,
    post_callback,
    start_server,
)
from tests.fake_http import base_url, serve_json

ADMIN = auth(1, admin=True)
CREATE = """mutation($url: String!, $events: [String!]!) { createWebhookEndpoint(input: {url: $url,
  events: $events, description: "ops"}) { id url events secret disabled } }"""
DELIVERIES = """query($e: ID!) { webhookDeliveries(endpointId: $e) { id eventId eventType attempts status
  lastStatusCode nextAttemptAt createdAt } }"""


@dataclass
class Receiver:
    """A webhook receiver: every request as it came, and how many to fail first."""

    failures_left: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, object]:
        with self.lock:
            self.received.append(({key.lower(): value for key, value in headers.items()}, body))
            if self.failures_left > 0:
                self.failures_left -= 1
                return 503, {"error": "try later"}
        return 200, {"ok": True}

    def verified(self, secret: str) -> list[dict]:
        """Every body received, each checked against its signature (raises if one does not verify)."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]


@pytest.fixture
def receiver():
    found = Receiver()
    server = serve_json(found.handle)
    yield found, base_url(server) + "/hooks"
    server.shutdown()


@pytest.fixture
def webhook_server(private_database, tmp_path):
    handle = start_server(private_database, tmp_path, WEBHOOKS_ALLOW_HTTP="true")
    yield handle
    handle.stop()


async def wait_for(condition, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def settled(client, endpoint_id: str) -> list[dict]:
    """The endpoint's deliveries once none is pending (the sender records an answer after it)."""
    for _ in range(100):
        body = await graphql(client, DELIVERIES, {"e": endpoint_id}, headers=ADMIN)
        listed = body["data"]["webhookDeliveries"]
        if all(delivery["status"] != "pending" for delivery in listed):
            return listed
        await asyncio.sleep(0.1)
    raise AssertionError(f"deliveries still pending: {listed}")


async def complete_calls(client, base: str, agent: int, count: int, *, first: int = 0, user: int = 2) -> None:
    at = datetime.now(UTC) - timedelta(minutes=30)
    for n in range(first, first + count):
        for form in call_events(f"CA{user:04d}{n:028d}", answered_at=at, duration=60 + n):
            assert (await post_callback(client, base, form, query=f"agent_id={agent}")).status_code == 200


async def test_events_are_signed_sent_in_order_and_listed(webhook_server, receiver):
    found, url = receiver
    async with httpx.AsyncClient(base_url=webhook_server.base_url, timeout=30) as client:
        created = (await graphql(client, CREATE, {"url": url, "events": ["call.completed"]}, headers=ADMIN))[
            "data"
        ]["createWebhookEndpoint"]
        assert created["secret"].startswith("whsec_") and created["disabled"] is False
        agent = await add_agent(webhook_server.database_url, user_id=2, name="ana", numbers=[])
        await complete_calls(client, webhook_server.base_url, agent, 5)
        await wait_for(lambda: len(found.received) >= 5, timeout=10)
        events = found.verified(created["secret"])
        assert [event["type"] for event in events] == ["call.completed"] * 5
        assert [event["data"]["call"]["call_sid"] for event in events] == [
            f"CA0002{n:028d}" for n in range(5)
        ]
        assert {event["data"]["user_id"] for event in events} == {"2"}
        assert events[0]["data"]["call"]["duration_seconds"] == 60
        assert events[0]["data"]["call"]["cost_usd"] == 0.05
        assert [headers["webhook-id"] for headers, _ in found.received] == [event["id"] for event in events]
        listed = await settled(client, created["id"])
        assert [(d["status"], d["attempts"], d["lastStatusCode"]) for d in listed] == [
            ("succeeded", 1, 200)
        ] * 5
        # Only the listed types: no invoice events were asked for; the secret is shown once only.
        body = await graphql(client, "{ webhookEndpoints { id secret events } }", headers=ADMIN)
        assert body["data"]["webhookEndpoints"] == [
            {"id": created["id"], "secret": None, "events": ["call.completed"]}
        ]


async def test_a_failing_receiver_gets_the_same_webhook_id_again_until_it_recovers(webhook_server, receiver):
    found, url = receiver
    found.failures_left = 1
    async with httpx.AsyncClient(base_url=webhook_server.base_url, timeout=30) as client:
        created = (await graphql(client, CREATE, {"url": url, "events": ["call.completed"]}, headers=ADMIN))[
            "data"
        ]["createWebhookEndpoint"]
        agent = await add_agent(webhook_server.database_url, user_id=3, name="bo", numbers=[])
        await complete_calls(client, webhook_server.base_url, agent, 2, user=3)
        await wait_for(lambda: len(found.received) >= 3, timeout=15)  # first retry within 10 s
        ids = [headers["webhook-id"] for headers, _ in found.received]
        # The first event failed, was retried with the same id, and the second waited for it (order).
        assert ids[0] == ids[1] and ids[2] != ids[0]
        found.verified(created["secret"])
        listed = await settled(client, created["id"])
        assert [(d["status"], d["attempts"]) for d in reversed(listed)] == [
            ("succeeded", 2),
            ("succeeded", 1),
        ]
        redone = await graphql(
            client,
            "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { status eventId } }",
            {"d": listed[-1]["id"]},
            headers=ADMIN,
        )
        assert redone["data"]["redeliverWebhook"] == {"status": "pending", "eventId": ids[0]}
        await wait_for(lambda: len(found.received) >= 4, timeout=10)
        assert found.received[3][0]["webhook-id"] == ids[0]


async def test_endpoints_refuse_unsafe_urls_and_unknown_events(server, client):
    # The session's server runs without WEBHOOKS_ALLOW_HTTP.
    unsafe = ("http://example.com/hook", "https://127.0.0.1/hook", "https://10.1.2.3/x", "https://[::1]/x")
    malformed = ("https://x.com:99999/", "https://[::1", "https://user:pw@example.com/", "hook")
    for url in unsafe + malformed:
        body = await graphql(client, CREATE, {"url": url, "events": ["call.completed"]}, headers=ADMIN)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", (url, body)
    body = await graphql(client, CREATE, {"url": "https://8.8.8.8/x", "events": ["call.nope"]}, headers=ADMIN)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "call.nope" in body["errors"][0]["message"]
    body = await graphql(
        client, CREATE, {"url": "https://8.8.8.8/x", "events": ["call.completed"]}, headers=auth(2)
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await graphql(client, "{ webhookEndpoints { id } }", headers=ADMIN))["data"][
        "webhookEndpoints"
    ] == []


async def test_nothing_is_written_for_a_change_that_rolls_back(private_database):
    db = await open_db(private_database)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_endpoints (url, events, secret, disabled, created_at) "
                "VALUES ('http://x', ',invoice.finalized,', 's', false, '2026-12-01 00:00:00+00')"
            )
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                now = datetime.now(UTC)
                assert await outbox.enqueue(
                    conn, type=EventType.INVOICE_FINALIZED, user_id=2, data={}, now=now
                )
                raise RuntimeError("the change fails after its event was written")
        async with db.connection() as conn:
            assert await conn.fetch_val("SELECT count(*) FROM outbox_events") == 0
            assert await conn.fetch_val("SELECT count(*) FROM webhook_deliveries") == 0
    finally:
        await db.disconnect()


async def test_two_processes_deliver_each_event_once_in_order(private_database, tmp_path, receiver):
    if private_database.startswith("sqlite"):
        pytest.skip("SQLite is one process by design")
    found, url = receiver
    servers = [start_server(private_database, tmp_path, WEBHOOKS_ALLOW_HTTP="true") for _ in range(2)]
    try:
        async with httpx.AsyncClient(base_url=servers[0].base_url, timeout=30) as client:
            created = (
                await graphql(client, CREATE, {"url": url, "events": ["call.completed"]}, headers=ADMIN)
            )["data"]["createWebhookEndpoint"]
            agents = [
                await add_agent(private_database, user_id=user, name="a", numbers=[]) for user in (4, 5, 6)
            ]
            await asyncio.gather(
                *(
                    complete_calls(client, servers[n % 2].base_url, agent, 20, user=user)
                    for n, (agent, user) in enumerate(zip(agents, (4, 5, 6), strict=True))
                )
            )
            await wait_for(lambda: len(found.received) >= 60, timeout=20)
            await asyncio.sleep(1)  # any duplicate would arrive by now
            events = found.verified(created["secret"])
            assert len(events) == 60 and len({event["id"] for event in events}) == 60  # 0 duplicates
            for user in ("4", "5", "6"):
                sids = [e["data"]["call"]["call_sid"] for e in events if e["data"]["user_id"] == user]
                assert sids == sorted(sids) and len(sids) == 20
    finally:
        for handle in servers:
            handle.stop()


ALERT = """mutation($u: ID!, $m: AlertMetric!, $t: Decimal!) { createUsageAlert(input: {userId: $u,
  metric: $m, threshold: $t, name: "watch"}) { id metric threshold name lastFiredMonth } }"""


async def test_alerts_and_balance_events_fire_once_in_the_transaction_that_crossed(
    webhook_server, receiver, tmp_path
):
    found, url = receiver
    every = [str(kind) for kind in EventType if kind is not EventType.CALL_COMPLETED]
    async with httpx.AsyncClient(base_url=webhook_server.base_url, timeout=30) as client:
        created = (await graphql(client, CREATE, {"url": url, "events": every}, headers=ADMIN))["data"][
            "createWebhookEndpoint"
        ]
        agent = await add_agent(webhook_server.database_url, user_id=7, name="eve", numbers=[])
        limits = {"lowBalanceUsd": "0.50", "monthlySpendCapUsd": "0.80"}
        await graphql(
            client,
            "mutation($in: LimitsInput!) { setLimits(userId: 7, input: $in) { userId } }",
            {"in": limits},
            headers=ADMIN,
        )
        await graphql(
            client,
            'mutation { grantCredits(userId: 7, amountUsd: "1.00", idempotencyKey: "w") { id } }',
            headers=ADMIN,
        )
        spend = (await graphql(client, ALERT, {"u": "7", "m": "SPEND_USD", "t": "0.30"}, headers=ADMIN))[
            "data"
        ]
        await graphql(client, ALERT, {"u": "7", "m": "MINUTES", "t": "5"}, headers=ADMIN)
        assert spend["createUsageAlert"]["lastFiredMonth"] is None
        bad = await graphql(client, ALERT, {"u": "7", "m": "MINUTES", "t": "0"}, headers=ADMIN)
        assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

        at = datetime.now(UTC) - timedelta(minutes=40)
        # $0.05 a minute: 0.30 (alerts), 0.55 (balance 0.45: low), 0.85 (cap), 1.05 (exhausted), 1.10.
        for n, seconds in enumerate((360, 300, 360, 240, 60)):
            for form in call_events(f"CA0007{n:028d}", answered_at=at, duration=seconds):
                response = await post_callback(
                    client, webhook_server.base_url, form, query=f"agent_id={agent}"
                )
                assert response.status_code == 200
        await wait_for(lambda: len(found.received) >= 5, timeout=10)
        await asyncio.sleep(1.5)  # the periodic pass would have sent any repeat by now
        # Due deliveries go out side by side, so arrival order is not event order (as with Stripe's
        # and Svix's webhooks): a receiver orders by `created_at`.
        events = sorted(found.verified(created["secret"]), key=lambda event: event["created_at"])
        assert [event["type"] for event in events] == [
            "usage.threshold_reached",
            "usage.threshold_reached",
            "balance.low",
            "spend_cap.reached",
            "balance.exhausted",
        ]
        assert {events[0]["data"]["alert"]["metric"], events[1]["data"]["alert"]["metric"]} == {
            "SPEND_USD",
            "MINUTES",
        }
        assert events[0]["data"]["month"]["total_cost_usd"] == 0.30
        assert events[2]["data"]["balance_usd"] == 0.45 and events[2]["data"]["available_usd"] == 0.45
        assert events[3]["data"]["month"]["total_cost_usd"] == 0.85
        assert events[4]["data"]["balance_usd"] == -0.05
        body = await graphql(
            client, "{ usage(userId: 7) { alerts { metric lastFiredMonth } } }", headers=ADMIN
        )
        assert all(alert["lastFiredMonth"] for alert in body["data"]["usage"]["alerts"])

        # A grant takes the available balance above 0 again: the next time it runs out is told too.
        await graphql(
            client,
            'mutation { grantCredits(userId: 7, amountUsd: "1.00", idempotencyKey: "w2") { id } }',
            headers=ADMIN,
        )
        for form in call_events(f"CA0007{9:028d}", answered_at=at, duration=1200):  # $1.00: 0.90 → -0.10
            assert (
                await post_callback(client, webhook_server.base_url, form, query=f"agent_id={agent}")
            ).status_code == 200
        await wait_for(lambda: len(found.received) >= 7, timeout=10)
        await asyncio.sleep(1.5)
        later = found.verified(created["secret"])[5:]
        assert [event["type"] for event in later] == ["balance.low", "balance.exhausted"]
        assert later[1]["data"]["balance_usd"] == -0.10


async def test_events_committed_before_a_sigkill_are_delivered_after_the_restart(private_database, tmp_path):
    port = free_port()  # nothing listens there yet: every first attempt is refused
    url = f"http://127.0.0.1:{port}/hooks"
    first = start_server(private_database, tmp_path, WEBHOOKS_ALLOW_HTTP="true")
    try:
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
            created = (
                await graphql(client, CREATE, {"url": url, "events": ["call.completed"]}, headers=ADMIN)
            )["data"]["createWebhookEndpoint"]
            agent = await add_agent(private_database, user_id=8, name="kay", numbers=[])
            await complete_calls(client, first.base_url, agent, 6, user=8)
    finally:
        first.process.kill()  # SIGKILL: between commit and delivery
        first.process.wait()
    found = Receiver()
    listening = serve_json(found.handle, port=port)
    second = start_server(private_database, tmp_path, WEBHOOKS_ALLOW_HTTP="true")
    try:
        await wait_for(lambda: len(found.received) >= 6, timeout=20)
        await asyncio.sleep(1)
        events = found.verified(created["secret"])
        assert len(events) == 6 and len({event["id"] for event in events}) == 6
        assert [e["data"]["call"]["call_sid"] for e in events] == [f"CA0008{n:028d}" for n in range(6)]
    finally:
        second.stop()
        listening.shutdown()


async def test_a_database_outage_loses_no_delivery(private_postgres, tmp_path):
    from callmeter.db.migrate import migrate
    from tests.factories import create_pg_database

    url = await asyncio.to_thread(create_pg_database, private_postgres.url, "callmeter_webhook_outage")
    migrate(url)
    port = free_port()  # the receiver comes up only after the outage: every first attempt is refused
    handle = start_server(url, tmp_path, WEBHOOKS_ALLOW_HTTP="true")
    listening = None
    try:
        async with httpx.AsyncClient(base_url=handle.base_url, timeout=30) as client:
            hook = f"http://127.0.0.1:{port}/hooks"
            created = (
                await graphql(client, CREATE, {"url": hook, "events": ["call.completed"]}, headers=ADMIN)
            )["data"]["createWebhookEndpoint"]
            agent = await add_agent(url, user_id=9, name="liv", numbers=[])
            await complete_calls(client, handle.base_url, agent, 5, user=9)
            await asyncio.to_thread(private_postgres.stop, "immediate")  # the sender's rounds now fail
            await asyncio.sleep(3)
            found = Receiver()
            listening = serve_json(found.handle, port=port)
            await asyncio.to_thread(private_postgres.start)
            await wait_for(lambda: len({h["webhook-id"] for h, _ in found.received}) >= 5, timeout=30)
            events = found.verified(created["secret"])
            assert sorted({e["data"]["call"]["call_sid"] for e in events}) == [
                f"CA0009{n:028d}" for n in range(5)
            ]
    finally:
        handle.stop()
        if listening is not None:
            listening.shutdown()


async def test_an_outcome_after_its_lease_is_left_to_the_next_claim(private_database):
    from callmeter.db import deliveries
    from callmeter.outbound.webhooks import Attempt
    from callmeter.workers.deliveries import decide

    db = await open_db(private_database)
    try:
        now = datetime.now(UTC)
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_endpoints (url, events, secret, disabled, created_at) "
                "VALUES ('https://x.example/h', ',invoice.finalized,', 's', false, '2026-12-01 00:00:00+00')"
            )
            await outbox.enqueue(conn, type=EventType.INVOICE_FINALIZED, user_id=2, data={}, now=now)
        async with db.transaction() as conn:
            slow = await deliveries.claim_due(conn, now=now)
        later = now + deliveries.LEASE + timedelta(seconds=1)  # the first round outlived its lease
        async with db.transaction() as conn:
            assert await deliveries.claim_due(conn, now=now) == []  # leased
            fresh = await deliveries.claim_due(conn, now=later)
        assert [claim.delivery_id for claim in slow] == [claim.delivery_id for claim in fresh]
        answered = Attempt(True, 200, None, 5)
        async with db.transaction() as conn:
            stale = [decide(claim, answered, later) for claim in slow]
            assert await deliveries.record(conn, stale, leased_until=slow[0].leased_until) == 0
            current = [decide(claim, answered, later) for claim in fresh]
            assert await deliveries.record(conn, current, leased_until=fresh[0].leased_until) == 1
        async with db.connection() as conn:
            assert await conn.fetch_val("SELECT count(*) FROM webhook_attempts") == 1
            assert await conn.fetch_val("SELECT status FROM webhook_deliveries") == "succeeded"
    finally:
        await db.disconnect()
