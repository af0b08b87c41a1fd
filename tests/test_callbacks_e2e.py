"""Signed callbacks over real HTTP into `callmeter serve`, checked against independent arithmetic."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from tests.factories import add_agent, auth, batches, call_events, graphql, post_callback

RATE = Decimal("0.05")
NUMBER = "+18449263376"


def expected_charge(seconds: int) -> Decimal:
    return (RATE * seconds / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_minutes(seconds: int) -> float:
    return float((Decimal(seconds) / 60).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def this_month_at(day: int, hour: int) -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, min(day, 28), hour, 0, tzinfo=UTC)


USAGE = """query($u: ID) { usage(userId: $u) { current { month totalCalls totalSeconds totalMinutes
  totalCostUsd } calls(first: 500) { edges { node { callSid status durationSeconds costUsd
  startedAt endedAt agent { name } } } } } }"""


async def test_many_calls_with_duplicates_replays_and_reordering(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    rng = random.Random(7)
    durations = {f"CA{index:032x}": rng.randint(1, 1800) for index in range(60)}
    deliveries = []
    for offset, (sid, duration) in enumerate(durations.items()):
        events = call_events(
            sid, answered_at=this_month_at(2, 0) + timedelta(minutes=offset * 40), duration=duration
        )
        rng.shuffle(events)
        deliveries += events + rng.sample(events, 2)  # every call gets two duplicates
    rng.shuffle(deliveries)
    for batch in batches(deliveries, 16):
        responses = await asyncio.gather(*(post_callback(client, server.base_url, form) for form in batch))
        assert {response.status_code for response in responses} == {200}
    # A full replay of everything changes nothing.
    for batch in batches(deliveries, 32):
        await asyncio.gather(*(post_callback(client, server.base_url, form) for form in batch))

    total = sum(durations.values())
    current = (await client.get("/api/usage/current", headers=auth(1))).json()
    assert current == {
        "month": this_month_at(2, 0).strftime("%Y-%m"),
        "total_calls": 60,
        "total_minutes": expected_minutes(total),
        "total_cost_usd": float(expected_charge(total)),
    }
    body = await graphql(client, USAGE, headers=auth(1))
    usage = body["data"]["usage"]
    assert usage["current"]["totalSeconds"] == total
    assert Decimal(usage["current"]["totalCostUsd"]) == expected_charge(total)
    nodes = [edge["node"] for edge in usage["calls"]["edges"]]
    assert {node["callSid"]: node["durationSeconds"] for node in nodes} == durations
    assert {node["status"] for node in nodes} == {"COMPLETED"}
    assert {node["agent"]["name"] for node in nodes} == {"juana"}
    # Per-call costs add up to the month's charge exactly.
    assert sum(Decimal(node["costUsd"]) for node in nodes) == expected_charge(total)


async def test_every_order_of_one_calls_events_gives_the_same_call(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    answered = this_month_at(3, 10)
    template = call_events("CA" + "0" * 32, answered_at=answered, duration=145)
    orders = list(itertools.permutations(range(4)))
    for number, order in enumerate(orders):
        sid = f"CA{number:032x}"
        for index in order:
            response = await post_callback(client, server.base_url, {**template[index], "CallSid": sid})
            assert response.status_code == 200
    calls = (await client.get("/api/usage/calls?limit=500", headers=auth(1))).json()["calls"]
    assert len(calls) == len(orders)
    for call in calls:
        assert call["status"] == "completed"
        assert call["duration_seconds"] == 145
        assert call["started_at"] == answered.strftime("%Y-%m-%d %H:%M:%S")
        assert call["ended_at"] == (answered + timedelta(seconds=145)).strftime("%Y-%m-%d %H:%M:%S")
        assert call["agent_name"] == "juana"
    current = (await client.get("/api/usage/current", headers=auth(1))).json()
    assert current["total_calls"] == 24
    assert Decimal(str(current["total_cost_usd"])) == expected_charge(145 * 24)
    assert sum(Decimal(str(call["cost_usd"])) for call in calls) == expected_charge(145 * 24)


async def test_concurrent_delivery_of_one_calls_events(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    for round_number in range(5):
        events = call_events(f"CA{round_number:032x}", answered_at=this_month_at(4, 9), duration=61)
        responses = await asyncio.gather(
            *(post_callback(client, server.base_url, form) for form in events * 3)
        )
        assert {response.status_code for response in responses} == {200}
    current = (await client.get("/api/usage/current", headers=auth(1))).json()
    assert current["total_calls"] == 5
    assert current["total_cost_usd"] == float(expected_charge(61 * 5))


async def test_the_same_callback_fifty_times_at_once_counts_once(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    events = call_events("CA" + "5" * 32, answered_at=this_month_at(5, 9), duration=600)
    await post_callback(client, server.base_url, events[2])
    responses = await asyncio.gather(*(post_callback(client, server.base_url, events[3]) for _ in range(50)))
    assert {response.status_code for response in responses} == {200}
    current = (await client.get("/api/usage/current", headers=auth(1))).json()
    assert (current["total_calls"], current["total_cost_usd"]) == (1, 0.5)


async def test_a_final_status_never_regresses_and_failed_calls_cost_nothing(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    events = call_events("CA" + "6" * 32, answered_at=this_month_at(6, 9), duration=90)
    for form in (events[3], events[2], events[1], events[0]):
        await post_callback(client, server.base_url, form)
    busy = call_events("CA" + "7" * 32, answered_at=this_month_at(6, 10), duration=0)
    busy[3] = {**busy[3], "CallStatus": "busy", "CallDuration": "0"}
    for form in (busy[0], busy[1], busy[3]):
        assert (await post_callback(client, server.base_url, form)).status_code == 200
    late_completed = {**busy[3], "CallStatus": "completed", "CallDuration": "300", "SequenceNumber": "9"}
    await post_callback(client, server.base_url, late_completed)
    body = await graphql(
        client,
        "{ usage { current { totalCalls totalSeconds } "
        'a: call(callSid: "CA' + "6" * 32 + '") { status durationSeconds } '
        'b: call(callSid: "CA' + "7" * 32 + '") { status costUsd startedAt } '
        "activeCalls { callSid } } }",
        headers=auth(1),
    )
    usage = body["data"]["usage"]
    assert usage["current"] == {"totalCalls": 1, "totalSeconds": 90}
    assert usage["a"] == {"status": "COMPLETED", "durationSeconds": 90}
    assert usage["b"] == {"status": "FAILED", "costUsd": "0.00", "startedAt": None}
    assert usage["activeCalls"] == []


async def test_active_calls_and_outbound_attribution_by_from(server, client):
    agent_id = await add_agent(server.database_url, user_id=3, name="outbound", numbers=["+15550009999"])
    events = call_events(
        "CA" + "8" * 32,
        answered_at=this_month_at(7, 9),
        duration=30,
        to="+15550009999",
        direction="outbound-api",
    )
    for form in events[:3]:
        assert (await post_callback(client, server.base_url, form)).status_code == 200
    query = "{ usage { activeCalls { callSid status callFrom agent { id name phoneNumbers } } } }"
    active = (await graphql(client, query, headers=auth(3)))["data"]["usage"]["activeCalls"]
    assert active == [
        {
            "callSid": "CA" + "8" * 32,
            "status": "ACTIVE",
            "callFrom": "+15550009999",
            "agent": {"id": str(agent_id), "name": "outbound", "phoneNumbers": ["+15550009999"]},
        }
    ]
    await post_callback(client, server.base_url, events[3])
    active = (await graphql(client, query, headers=auth(3)))["data"]["usage"]["activeCalls"]
    assert active == []
    # A page of calls brings each agent's name with it; its numbers are loaded when asked for.
    page = "{ usage { calls { edges { node { agent { id name phoneNumbers } } } } } }"
    edges = (await graphql(client, page, headers=auth(3)))["data"]["usage"]["calls"]["edges"]
    assert edges == [
        {"node": {"agent": {"id": str(agent_id), "name": "outbound", "phoneNumbers": ["+15550009999"]}}}
    ]


async def test_agent_id_query_parameter_attributes_the_call(server, client):
    agent_id = await add_agent(server.database_url, user_id=4, name="by-id", numbers=["+15550004444"])
    events = call_events("CA" + "9" * 32, answered_at=this_month_at(8, 9), duration=120, to="+19990000000")
    for form in events:
        response = await post_callback(client, server.base_url, form, query=f"agent_id={agent_id}")
        assert response.status_code == 200
    current = (await client.get("/api/usage/current", headers=auth(4))).json()
    assert (current["total_calls"], current["total_cost_usd"]) == (1, 0.1)


async def test_history_month_and_call_pages(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    january = datetime(2026, 1, 15, 12, tzinfo=UTC)
    for index in range(7):
        for form in call_events(
            f"CA{index:032x}", answered_at=january + timedelta(hours=index), duration=60 * (index + 1)
        ):
            await post_callback(client, server.base_url, form)
    history = (await client.get("/api/usage/history?month=2026-01", headers=auth(1))).json()
    assert history == {"month": "2026-01", "total_calls": 7, "total_minutes": 28.0, "total_cost_usd": 1.4}
    empty = (await client.get("/api/usage/history?month=2025-12", headers=auth(1))).json()
    assert empty == {"month": "2025-12", "total_calls": 0, "total_minutes": 0.0, "total_cost_usd": 0.0}
    months = await graphql(
        client, '{ usage { history(from: "2025-12", to: "2026-02") { month totalCalls } } }', headers=auth(1)
    )
    assert months["data"]["usage"]["history"] == [
        {"month": "2025-12", "totalCalls": 0},
        {"month": "2026-01", "totalCalls": 7},
        {"month": "2026-02", "totalCalls": 0},
    ]
    seen, after = [], None
    page_query = """query($after: String) { usage { calls(first: 3, after: $after) {
        edges { cursor node { callSid } } pageInfo { hasNextPage endCursor } } } }"""
    while True:
        page = (await graphql(client, page_query, {"after": after}, headers=auth(1)))["data"]["usage"][
            "calls"
        ]
        seen += [edge["node"]["callSid"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"CA{index:032x}" for index in reversed(range(7))]  # newest first
    rest = (await client.get("/api/usage/calls?limit=2", headers=auth(1))).json()["calls"]
    assert [call["id"] for call in rest] == [7, 6]
    assert rest[0]["started_at"] == "2026-01-15 18:00:00"
    assert rest[0]["cost_usd"] == 0.35
