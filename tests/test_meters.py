"""Usage events and meters end to end, through `callmeter serve` over HTTP on SQLite and PostgreSQL:
ingest (idempotency, conflicts, bad input), billing in the call's month before or after its
callbacks, per-call breakdowns, the month by meter, invoices, prepaid balances, re-rating on a plan
change, live updates, and exact totals under concurrent batches with duplicates."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from callmeter.billing.meters import MeterRate, meter_charge
from callmeter.db.meter_tables import meter_usage, usage_events
from callmeter.months import Month
from tests.factories import add_agent, auth, call_events, graphql, make_token, open_db, post_callback
from tests.ws_client import Subscriber

ADMIN = auth(1, admin=True)
LLM = MeterRate("llm_tokens", Decimal(1000), Decimal("0.002"))
TTS = MeterRate("tts_characters", Decimal(1), Decimal("0.00003"))
CREATE_PLAN = """mutation($rate: Decimal!) { createPlan(input: {name: "voice ai", kind: PAY_AS_YOU_GO,
  ratePerMinute: "0.05", meterRates: [{meter: "llm_tokens", unitSize: "1000", ratePerUnit: $rate},
  {meter: "tts_characters", ratePerUnit: "0.00003"}]}) { id meterRates { meter unitSize ratePerUnit } } }"""
ASSIGN = (
    """mutation($u: ID!, $p: ID!, $m: String!) { assignPlan(userId: $u, planId: $p, fromMonth: $m) { id } }"""
)
CALLS = """query($u: ID) { usage(userId: $u) { calls(first: 50) { edges { node { callSid costUsd totalCostUsd
  costBreakdown { meter quantity costUsd } } } } } }"""
MONTH = """query($u: ID) { usage(userId: $u) { current { month usageChargeUsd totalCostUsd
  byMeter { meter quantity costUsd } } } }"""
INVOICE = """query($u: ID, $m: String!) { usage(userId: $u) { invoice(month: $m) { totalUsd
  lines { description quantity unitPriceUsd amountUsd } } } }"""


def sid(n: int, user: int) -> str:
    return f"CA{user:04d}{n:028d}"


def event(key: str, meter: str, quantity: str, *, call: str | None, at: datetime | None = None) -> dict:
    found = {"idempotency_key": key, "meter": meter, "quantity": quantity}
    found["occurred_at"] = (at or datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    if call is not None:
        found["call_sid"] = call
    return found


async def post_events(client, user: int, events: list[dict], *, headers: dict | None = None):
    return await client.post(
        f"/api/usage/events?user_id={user}", json={"events": events}, headers=headers or ADMIN
    )


async def complete(client, base_url: str, agent: int, call_sid: str, duration: int) -> None:
    at = datetime.now(UTC) - timedelta(minutes=20)
    for form in call_events(call_sid, answered_at=at, duration=duration):
        assert (await post_callback(client, base_url, form, query=f"agent_id={agent}")).status_code == 200


async def priced_user(client, user: int) -> str:
    created = (await graphql(client, CREATE_PLAN, {"rate": "0.002"}, headers=ADMIN))["data"]["createPlan"]
    assert created["meterRates"] == [
        {"meter": "llm_tokens", "unitSize": "1000", "ratePerUnit": "0.002"},
        {"meter": "tts_characters", "unitSize": "1", "ratePerUnit": "0.00003"},
    ]
    month = datetime.now(UTC).strftime("%Y-%m")
    assert "errors" not in await graphql(
        client, ASSIGN, {"u": str(user), "p": created["id"], "m": month}, headers=ADMIN
    )
    return month


async def test_events_are_stored_once_billed_in_their_calls_month_and_shown_everywhere(server, client):
    month = await priced_user(client, 31)
    agent = await add_agent(server.database_url, user_id=31, name="ava", numbers=[])
    await complete(client, server.base_url, agent, sid(1, 31), 120)  # $0.10 of minutes
    batch = [
        event("k1", "llm_tokens", "1523", call=sid(1, 31)),
        event("k2", "llm_tokens", "1000", call=sid(1, 31)),
        event("k3", "tts_characters", "4000", call=sid(1, 31)),
        event("k4", "llm_tokens", "2500", call=sid(2, 31)),  # its call comes later
        event("k5", "stt_seconds", "30", call=None),  # not priced, no call: recorded at cost 0
    ]
    response = await post_events(client, 31, batch)
    assert response.status_code == 200 and response.json() == {"accepted": 5, "duplicates": 0}
    again = await post_events(client, 31, batch[:2] + batch[:1])
    assert again.json() == {"accepted": 0, "duplicates": 3}

    # The same key with another value: 409 for the whole request; its new event is not stored.
    conflict = await post_events(
        client, 31, [event("k9", "llm_tokens", "5", call=None), {**batch[0], "quantity": "7"}]
    )
    assert conflict.status_code == 409 and conflict.json()["code"] == "CONFLICT"
    twice = await post_events(
        client, 31, [event("k8", "llm_tokens", "5", call=None), event("k8", "llm_tokens", "6", call=None)]
    )
    assert twice.status_code == 409
    assert (await post_events(client, 31, [event("k9", "llm_tokens", "5", call=None)])).json()[
        "accepted"
    ] == 1

    # The call the waiting event names appears: the event is billed into its month.
    await complete(client, server.base_url, agent, sid(2, 31), 60)
    calls = {
        edge["node"]["callSid"]: edge["node"]
        for edge in (await graphql(client, CALLS, {"u": "31"}, headers=ADMIN))["data"]["usage"]["calls"][
            "edges"
        ]
    }
    first = calls[sid(1, 31)]
    # 2523 tokens: round(0.005046) = 0.01; 4000 chars: 0.12.
    assert first["costBreakdown"] == [
        {"meter": "telephony_minutes", "quantity": "2.0000", "costUsd": "0.10"},
        {"meter": "llm_tokens", "quantity": "2523", "costUsd": "0.01"},
        {"meter": "tts_characters", "quantity": "4000", "costUsd": "0.12"},
    ]
    assert (first["costUsd"], first["totalCostUsd"]) == ("0.10", "0.23")
    second = calls[sid(2, 31)]
    assert second["costBreakdown"][1]["meter"] == "llm_tokens"
    assert sum(Decimal(part["costUsd"]) for part in second["costBreakdown"]) == Decimal(
        second["totalCostUsd"]
    )

    current = (await graphql(client, MONTH, {"u": "31"}, headers=ADMIN))["data"]["usage"]["current"]
    by_meter = {part["meter"]: part for part in current["byMeter"]}
    assert set(by_meter) == {"telephony_minutes", "llm_tokens", "tts_characters", "stt_seconds"}
    tokens = Decimal(1523 + 1000 + 2500 + 5)
    assert by_meter["llm_tokens"] == {
        "meter": "llm_tokens",
        "quantity": f"{tokens}",
        "costUsd": str(meter_charge(LLM, tokens)),
    }
    assert by_meter["stt_seconds"]["costUsd"] == "0.00"
    assert sum(Decimal(part["costUsd"]) for part in current["byMeter"]) == Decimal(current["usageChargeUsd"])
    assert current["totalCostUsd"] == current["usageChargeUsd"]  # no fixed fee on this plan

    invoice = (await graphql(client, INVOICE, {"u": "31", "m": month}, headers=ADMIN))["data"]["usage"][
        "invoice"
    ]
    described = [line["description"] for line in invoice["lines"]]
    assert "Usage of llm_tokens at $0.002 per 1000" in described
    assert "Usage of tts_characters at $0.00003 each" in described
    assert not any("stt_seconds" in text for text in described)  # not priced: no line
    assert invoice["totalUsd"] == current["totalCostUsd"]
    assert sum(Decimal(line["amountUsd"]) for line in invoice["lines"]) == Decimal(invoice["totalUsd"])

    rest = (await client.get("/api/usage/calls?user_id=31", headers=ADMIN)).json()["calls"]
    assert {call["total_cost_usd"] for call in rest} >= {0.23}
    await assert_costs_add_up(server.database_url, 31)


async def assert_costs_add_up(database_url: str, user: int) -> None:
    """Every meter's month charge is the sum of its events' costs, and the rounded rate x quantity."""
    db = await open_db(database_url)
    try:
        async with db.connection() as conn:
            events = await conn.fetch_all(usage_events.select().where(usage_events.c.user_id == user))
            months = await conn.fetch_all(meter_usage.select().where(meter_usage.c.user_id == user))
    finally:
        await db.disconnect()
    for row in months:
        billed = [e for e in events if e["month"] == row["month"] and e["meter"] == row["meter"]]
        assert sum(Decimal(str(e["cost_usd"])) for e in billed) == Decimal(str(row["charge_usd"]))
        assert sum(Decimal(str(e["quantity"])) for e in billed) == Decimal(str(row["quantity"]))


async def test_bad_events_are_refused_whole_with_a_clear_error(server, client):
    good = event("g1", "llm_tokens", "10", call=None)
    bad_events = [
        {**good, "quantity": "-1"},
        {**good, "quantity": "0"},
        {**good, "quantity": "1000000000001"},
        {**good, "quantity": "abc"},
        {**good, "quantity": 1.5},
        {**good, "quantity": "1.0000001"},
        {**good, "meter": "LLM"},
        {**good, "meter": "telephony_minutes"},
        {**good, "occurred_at": "2026-12-01T10:00:00"},
        {**good, "occurred_at": "yesterday"},
        {**good, "occurred_at": "1970-01-01T00:00:00Z"},
        {**good, "occurred_at": "9999-12-31T23:00:00Z"},
        {**good, "occurred_at": "0001-01-01T00:00:00-05:00"},
        {**good, "quantity": "1_000"},
        {key: value for key, value in good.items() if key != "occurred_at"},
        {**good, "idempotency_key": ""},
        {**good, "call_sid": "CA nope"},
        {**good, "call_sid": ["CA1"]},
        {**good, "meter": {"m": 1}},
        {**good, "call_sid": "Bad-Meter", "meter": "Bad-Meter"},
        {**good, "extra": 1},
    ]
    for bad in bad_events:
        response = await post_events(client, 32, [good, bad])
        assert response.status_code == 400 and response.json()["code"] == "BAD_USER_INPUT", (
            bad,
            response.text,
        )
        assert "events[1]" in response.json()["error"]
    for body in ({"events": []}, {"events": [good] * 501}, {"event": [good]}, [good]):
        response = await client.post("/api/usage/events?user_id=32", json=body, headers=ADMIN)
        assert response.status_code == 400, body
    assert (await client.post("/api/usage/events", content=b"{", headers=ADMIN)).status_code == 400
    deep = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert (await client.post("/api/usage/events", content=deep, headers=ADMIN)).status_code == 400
    # A charge past what a month may hold is refused, not a database error.
    created = await graphql(
        client,
        """mutation { createPlan(input: {name: "x", kind: PAY_AS_YOU_GO, ratePerMinute: "0.05",
        meterRates: [{meter: "handoff_seconds", ratePerUnit: "1000000"}]}) { id } }""",
        headers=ADMIN,
    )
    month = datetime.now(UTC).strftime("%Y-%m")
    await graphql(
        client, ASSIGN, {"u": "32", "p": created["data"]["createPlan"]["id"], "m": month}, headers=ADMIN
    )
    for call in (None, "CA" + "7" * 32):  # billed now, or waiting for its call
        huge = event(f"h-{call}", "handoff_seconds", "1000000000000", call=call)
        answer = await post_events(client, 32, [huge])
        assert answer.status_code == 400 and "past $100,000,000,000" in answer.json()["error"], answer.text
    assert (await client.post("/api/usage/events", json={"events": [good]})).status_code == 401
    assert (await post_events(client, 33, [good], headers=auth(32))).status_code == 403
    # Nothing of it was stored: the good event is new now.
    assert (await post_events(client, 32, [good], headers=auth(32))).json() == {
        "accepted": 1,
        "duplicates": 0,
    }


async def test_prepaid_balances_draw_meters_and_a_plan_change_rerates_them(server, client):
    month = await priced_user(client, 34)
    grant = 'mutation { grantCredits(userId: 34, amountUsd: "5.00", idempotencyKey: "m") { id } }'
    assert "errors" not in await graphql(client, grant, headers=ADMIN)
    events = [event(f"p{n}", "tts_characters", "3333", call=None) for n in range(10)]  # 0.99999 -> 1.00
    assert (await post_events(client, 34, events)).json()["accepted"] == 10
    balance = """{ customer(userId: 34) { balanceUsd } }"""
    assert (await graphql(client, balance, headers=ADMIN))["data"]["customer"]["balanceUsd"] == "4.00"

    # A plan pricing tts twice as much, from this month: the meters are re-rated, the balance follows.
    created = (
        await graphql(
            client,
            """mutation { createPlan(input: {name: "dear", kind: PAY_AS_YOU_GO, ratePerMinute: "0.05",
        meterRates: [{meter: "tts_characters", ratePerUnit: "0.00006"}]}) { id } }""",
            headers=ADMIN,
        )
    )["data"]["createPlan"]
    await graphql(client, ASSIGN, {"u": "34", "p": created["id"], "m": month}, headers=ADMIN)
    current = (await graphql(client, MONTH, {"u": "34"}, headers=ADMIN))["data"]["usage"]["current"]
    assert {part["meter"]: part["costUsd"] for part in current["byMeter"]}["tts_characters"] == "2.00"
    assert (await graphql(client, balance, headers=ADMIN))["data"]["customer"]["balanceUsd"] == "3.00"
    await assert_costs_add_up(server.database_url, 34)


async def test_concurrent_batches_with_duplicates_in_any_order_sum_exactly(server, client):
    await priced_user(client, 35)
    agent = await add_agent(server.database_url, user_id=35, name="zoe", numbers=[])
    rng = random.Random(16)
    events = [
        event(
            f"c{n}",
            rng.choice(["llm_tokens", "tts_characters"]),
            str(rng.randint(1, 5000)),
            call=sid(n % 5, 35),
        )
        for n in range(300)
    ]
    sent = events + rng.sample(events, 100)
    rng.shuffle(sent)
    batches = [sent[start : start + 40] for start in range(0, len(sent), 40)]
    calls = [complete(client, server.base_url, agent, sid(n, 35), 30 + n) for n in range(5)]
    answers = await asyncio.gather(*(post_events(client, 35, batch) for batch in batches), *calls)
    posted = [answer for answer in answers if answer is not None]
    assert all(answer.status_code == 200 for answer in posted)
    assert sum(answer.json()["accepted"] for answer in posted) == 300
    assert sum(answer.json()["duplicates"] for answer in posted) == 100
    current = (await graphql(client, MONTH, {"u": "35"}, headers=ADMIN))["data"]["usage"]["current"]
    by_meter = {part["meter"]: part for part in current["byMeter"]}
    for rate in (LLM, TTS):
        quantity = sum(Decimal(e["quantity"]) for e in events if e["meter"] == rate.meter)
        assert by_meter[rate.meter]["costUsd"] == str(meter_charge(rate, quantity))
    calls = (await graphql(client, CALLS, {"u": "35"}, headers=ADMIN))["data"]["usage"]["calls"]["edges"]
    total = sum(Decimal(edge["node"]["totalCostUsd"]) for edge in calls)
    assert total == Decimal(current["totalCostUsd"])  # every event came with a call
    await assert_costs_add_up(server.database_url, 35)


async def test_live_subscribers_hear_of_meter_changes(server, client):
    await priced_user(client, 36)
    agent = await add_agent(server.database_url, user_id=36, name="lia", numbers=[])
    await complete(client, server.base_url, agent, sid(1, 36), 60)
    usage_sub = await Subscriber.connect(server.base_url, make_token(36))
    await usage_sub.subscribe("subscription { usageUpdated { totalCostUsd } }")
    calls_sub = await Subscriber.connect(server.base_url, make_token(36))
    await calls_sub.subscribe("subscription { callEvents { kind call { callSid totalCostUsd } } }")
    await asyncio.sleep(0.3)
    await post_events(client, 36, [event("l1", "tts_characters", "1000", call=sid(1, 36))])
    assert (await usage_sub.next())["data"]["usageUpdated"] == {"totalCostUsd": "0.08"}  # 0.05 + 0.03
    change = (await calls_sub.next())["data"]["callEvents"]
    assert change == {"kind": "UPDATED", "call": {"callSid": sid(1, 36), "totalCostUsd": "0.08"}}
    await usage_sub.close()
    await calls_sub.close()


async def test_a_call_answered_in_the_next_month_takes_its_events_along(server, client):
    from tests.factories import callback_form

    await priced_user(client, 37)  # priced from this month; the month before is on the default plan
    agent = await add_agent(server.database_url, user_id=37, name="ivy", numbers=[])
    now = datetime.now(UTC)
    boundary = datetime(now.year, now.month, 1, tzinfo=UTC)
    call = sid(1, 37)

    async def send(status: str, sequence: int, at: datetime, duration: int | None = None) -> None:
        form = callback_form(call, status, sequence=sequence, at=at, duration=duration)
        assert (
            await post_callback(client, server.base_url, form, query=f"agent_id={agent}")
        ).status_code == 200

    await send("initiated", 0, boundary - timedelta(seconds=20))
    await send("ringing", 1, boundary - timedelta(seconds=19))
    await post_events(client, 37, [event("m1", "tts_characters", "1000", call=call, at=boundary)])
    before = (await graphql(client, MONTH, {"u": "37"}, headers=ADMIN))["data"]["usage"]["current"]
    assert [part["meter"] for part in before["byMeter"]] == ["telephony_minutes"]  # billed last month
    await send("in-progress", 2, boundary + timedelta(seconds=5))  # answered this month: it moves
    await send("completed", 3, boundary + timedelta(seconds=65), duration=60)
    current = (await graphql(client, MONTH, {"u": "37"}, headers=ADMIN))["data"]["usage"]["current"]
    assert {part["meter"]: part["costUsd"] for part in current["byMeter"]} == {
        "telephony_minutes": "0.05",
        "tts_characters": "0.03",
    }
    previous = str(Month.parse(current["month"]).previous())
    month_query = """query($u: ID, $m: String!) { usage(userId: $u) { month(month: $m) { usageChargeUsd
      byMeter { meter } } } }"""
    left = (await graphql(client, month_query, {"u": "37", "m": previous}, headers=ADMIN))["data"]["usage"][
        "month"
    ]
    assert left == {"usageChargeUsd": "0.00", "byMeter": [{"meter": "telephony_minutes"}]}
    await assert_costs_add_up(server.database_url, 37)


async def test_an_event_whose_call_never_appears_is_billed_after_a_day(private_database):
    from callmeter.billing.plans import Plan, PlanKind
    from callmeter.db import customers, meters, usage
    from callmeter.months import UTC_CALENDAR

    plan = Plan(name="p", kind=PlanKind.PAY_AS_YOU_GO, rate_per_minute=Decimal("0.05"), meter_rates=(TTS,))
    db = await open_db(private_database)
    try:
        now = datetime.now(UTC)
        sent = now - timedelta(hours=25)
        waiting = meters.UsageEvent("w1", "CA" + "9" * 32, "tts_characters", Decimal(2000), sent)
        async with db.transaction() as conn:
            await customers.ensure_customer(conn, user_id=38, calendar=UTC_CALENDAR)
            result = await meters.store_events(
                conn, user_id=38, events=[waiting], default_plan=plan, now=sent
            )
        assert (result.accepted, result.billed.months) == (1, set())  # waits for its call
        async with db.transaction() as conn:
            assert await meters.users_with_overdue(conn, now=sent + timedelta(hours=23)) == []
            assert await meters.users_with_overdue(conn, now=now) == [38]
            assert await meters.bill_overdue(conn, user_id=38, now=now, default_plan=plan) == (
                1,
                {UTC_CALENDAR.month_of(sent)},
            )
        async with db.connection() as conn:
            month = UTC_CALENDAR.month_of(sent)
            assert (await usage.fetch_month(conn, user_id=38, month=month)).usage_charge_usd == Decimal(
                "0.06"
            )
            assert await meters.users_with_overdue(conn, now=now) == []
    finally:
        await db.disconnect()
