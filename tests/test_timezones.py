"""Months in the customer's billing zone, end to end: signed callbacks over HTTP into `callmeter
serve`, read back through GraphQL, REST and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

from callmeter.db.customers import ensure_customer
from callmeter.months import Calendar, Month
from tests.factories import (
    add_agent,
    auth,
    batches,
    call_events,
    graphql,
    open_db,
    post_callback,
    run_cli,
    server_env,
    start_server,
)

LA = "America/Los_Angeles"
ADMIN = auth(1, admin=True)
MONTH = """query($u: ID, $m: String!) { usage(userId: $u) { customer { billingTimezone }
  month(month: $m) { month totalCalls totalSeconds totalCostUsd } } }"""
CALL_COST = """query($u: ID, $sid: String!) { usage(userId: $u) { call(callSid: $sid) { costUsd } } }"""
CUSTOMER = """query($u: ID!) { customer(userId: $u) { userId billingTimezone
  timezoneSchedule { fromMonth timezone } } }"""
SET_ZONE = """mutation($u: ID!, $tz: String!, $from: String!) {
  setBillingTimezone(userId: $u, timezone: $tz, fromMonth: $from) { billingTimezone
  timezoneSchedule { fromMonth timezone } } }"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def charge(seconds: int) -> Decimal:
    return (Decimal("0.05") * seconds / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture
def la_server(clean_database, tmp_path):
    """`callmeter serve` whose new customers are billed in Los Angeles (BILLING_TIMEZONE)."""
    handle = start_server(clean_database, tmp_path, BILLING_TIMEZONE=LA)
    yield handle
    handle.stop()


async def agent_of(database_url: str, user_id: int, zone: str | None = None) -> int:
    """An agent of `user_id`; with `zone`, the customer is first seen billed in it."""
    if zone is not None:
        db = await open_db(database_url)
        try:
            async with db.transaction() as conn:
                await ensure_customer(conn, user_id=user_id, calendar=Calendar.of_zone(zone))
        finally:
            await db.disconnect()
    return await add_agent(database_url, user_id=user_id, name=f"agent-{user_id}", numbers=[])


async def send(client, base_url: str, deliveries: list[tuple[int, dict]], rng: random.Random) -> None:
    """Every (agent id, callback) in a random order, each twice, sixteen at a time."""
    deliveries = deliveries + deliveries
    rng.shuffle(deliveries)
    for batch in batches(deliveries, 16):
        responses = await asyncio.gather(
            *(post_callback(client, base_url, form, query=f"agent_id={agent}") for agent, form in batch)
        )
        assert {response.status_code for response in responses} == {200}, [r.text for r in responses]


async def month_totals(client, user_id: int, month: str) -> dict:
    found = await graphql(client, MONTH, {"u": str(user_id), "m": month}, headers=ADMIN)
    return found["data"]["usage"]


async def test_an_evening_in_los_angeles_is_billed_in_its_local_month(la_server):
    """September 30 at 20:00 in Los Angeles is October in UTC; the LA customer sees September, the
    UTC customer October; a second either side of local midnight and 01:30 on both DST days too."""
    url = la_server.database_url
    la_agent = await agent_of(url, 5)  # first seen by a server whose BILLING_TIMEZONE is LA
    utc_agent = await agent_of(url, 6, "UTC")
    answers = {
        "CA" + "1" * 32: (utc(2026, 10, 1, 3), "2026-09", "2026-10"),  # 20:00 PDT on Sep 30
        "CA" + "2" * 32: (utc(2026, 10, 1, 6, 59, 59), "2026-09", "2026-10"),  # 23:59:59 PDT
        "CA" + "3" * 32: (utc(2026, 10, 1, 7), "2026-10", "2026-10"),  # 00:00:00 PDT on Oct 1
        "CA" + "4" * 32: (utc(2026, 11, 1, 6, 59, 59), "2026-10", "2026-11"),  # 23:59:59 PDT Oct 31
        "CA" + "5" * 32: (utc(2026, 11, 1, 8, 30), "2026-11", "2026-11"),  # 01:30 PDT, fall back day
        "CA" + "6" * 32: (utc(2026, 11, 1, 9, 30), "2026-11", "2026-11"),  # 01:30 PST, the same wall time
        "CA" + "7" * 32: (utc(2026, 3, 8, 9, 30), "2026-03", "2026-03"),  # 01:30 PST, spring forward day
        "CA" + "8" * 32: (utc(2026, 3, 1, 7, 59, 59), "2026-02", "2026-03"),  # 23:59:59 PST Feb 28
    }
    rng = random.Random(13)
    durations = {sid: rng.randint(1, 900) for sid in answers}
    deliveries = []
    for sid, (answered, _, _) in answers.items():
        for agent, prefix in ((la_agent, "CA"), (utc_agent, "CB")):
            for form in call_events(prefix + sid[2:], answered_at=answered, duration=durations[sid]):
                deliveries.append((agent, form))
    async with httpx.AsyncClient(base_url=la_server.base_url, timeout=30) as client:
        await send(client, la_server.base_url, deliveries, rng)
        for user_id, column, prefix, zone in ((5, 1, "CA", LA), (6, 2, "CB", "UTC")):
            for month in ("2026-02", "2026-03", "2026-09", "2026-10", "2026-11"):
                sids = [prefix + sid[2:] for sid, answer in answers.items() if answer[column] == month]
                found = await month_totals(client, user_id, month)
                assert found["customer"]["billingTimezone"] == zone
                seconds = sum(durations["CA" + sid[2:]] for sid in sids)
                costs = [
                    Decimal(
                        (await graphql(client, CALL_COST, {"u": str(user_id), "sid": sid}, headers=ADMIN))[
                            "data"
                        ]["usage"]["call"]["costUsd"]
                    )
                    for sid in sids
                ]
                assert found["month"] == {
                    "month": month,
                    "totalCalls": len(sids),
                    "totalSeconds": seconds,
                    "totalCostUsd": str(charge(seconds)),
                }, (user_id, month)
                assert sum(costs, Decimal(0)) == charge(seconds)
        # REST and the per-agent rollup speak of the same local months.
        rest = (await client.get("/api/usage/history?month=2026-09", headers=auth(5))).json()
        assert rest["month"] == "2026-09" and rest["total_calls"] == 2
        agents = await graphql(
            client, '{ usage { agentUsage(month: "2026-09") { totalCalls } } }', headers=auth(5)
        )
        assert agents["data"]["usage"]["agentUsage"] == [{"totalCalls": 2}]
        history = await graphql(
            client,
            '{ usage { history(from: "2026-09", to: "2026-11") { month totalCalls } } }',
            headers=auth(5),
        )
        assert [row["totalCalls"] for row in history["data"]["usage"]["history"]] == [2, 2, 2]
        # September is over in Los Angeles: its invoice holds the local month's calls.
        finalized = await graphql(
            client,
            'mutation { finalizeInvoices(month: "2026-09") { month status totalUsd } }',
            headers=ADMIN,
        )
        seconds = durations["CA" + "1" * 32] + durations["CA" + "2" * 32]
        assert finalized["data"]["finalizeInvoices"] == [
            {"month": "2026-09", "status": "FINALIZED", "totalUsd": str(charge(seconds))}
        ]


async def test_random_calls_in_random_zones_add_up_in_their_local_months(server, client):
    """A property over HTTP: calls answered near local month boundaries in random zones, every event
    sent twice in random order: each month's totals are the sum of the calls its local clock names."""
    rng = random.Random(2026)
    zones = [
        LA,
        "Asia/Kolkata",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "Europe/London",
        "Australia/Lord_Howe",
    ]
    customers = {}
    for user_id, zone in enumerate(zones, start=20):
        customers[user_id] = (zone, await agent_of(server.database_url, user_id, zone))
    calls, deliveries = [], []
    for index in range(48):
        user_id = rng.choice(list(customers))
        zone, agent = customers[user_id]
        month = Month(2026, rng.randint(1, 11))
        answered = Calendar.of_zone(zone).starts_at(month) + timedelta(seconds=rng.randint(-2, 2))
        duration, sid = rng.randint(1, 1200), f"CA{index:032x}"
        calls.append((user_id, sid, duration, Calendar.of_zone(zone).month_of(answered)))
        deliveries += [(agent, form) for form in call_events(sid, answered_at=answered, duration=duration)]
    await send(client, server.base_url, deliveries, rng)
    for user_id in customers:
        for month in {call[3] for call in calls if call[0] == user_id}:
            mine = [call for call in calls if call[0] == user_id and call[3] == month]
            found = (await month_totals(client, user_id, str(month)))["month"]
            seconds = sum(call[2] for call in mine)
            assert (found["totalCalls"], found["totalSeconds"]) == (len(mine), seconds), (user_id, month)
            assert Decimal(found["totalCostUsd"]) == charge(seconds)


def later_month(months: int) -> Month:
    month = Calendar.of_zone("UTC").current()
    for _ in range(months):
        month = month.next()
    return month


async def test_a_zone_change_moves_the_boundary_of_the_month_before_both_ways(la_server):
    """UTC → Los Angeles makes the month before 8 hours longer; Los Angeles → UTC 8 hours shorter.
    The change waits for its month: today's zone is still the old one."""
    url = la_server.database_url
    westward, eastward = await agent_of(url, 7, "UTC"), await agent_of(url, 8)
    change = later_month(2)  # two months on: later than the current month in any zone
    boundary = Calendar.of_zone("UTC").starts_at(change)  # midnight UTC on the 1st
    async with httpx.AsyncClient(base_url=la_server.base_url, timeout=30) as client:
        for user_id, zone in ((7, LA), (8, "UTC")):
            changed = await graphql(
                client, SET_ZONE, {"u": str(user_id), "tz": zone, "from": str(change)}, headers=ADMIN
            )
            assert changed["data"]["setBillingTimezone"]["timezoneSchedule"][-1] == {
                "fromMonth": str(change),
                "timezone": zone,
            }
        shown = await graphql(client, CUSTOMER, {"u": "7"}, headers=ADMIN)
        assert shown["data"]["customer"]["billingTimezone"] == "UTC"  # not yet in force
        # Three hours after midnight UTC on the 1st: still the month before for the customer moving
        # west (it ends at midnight in Los Angeles), already the new month for the one moving east
        # (the month before, in Los Angeles, ended at midnight UTC instead of 08:00 UTC).
        moment = boundary + timedelta(hours=3)
        deliveries = [
            (westward, form) for form in call_events("CA" + "a" * 32, answered_at=moment, duration=60)
        ]
        deliveries += [
            (eastward, form) for form in call_events("CA" + "b" * 32, answered_at=moment, duration=60)
        ]
        await send(client, la_server.base_url, deliveries, random.Random(1))
        before, after = str(change.previous()), str(change)
        assert (await month_totals(client, 7, before))["month"]["totalCalls"] == 1
        assert (await month_totals(client, 7, after))["month"]["totalCalls"] == 0
        assert (await month_totals(client, 8, before))["month"]["totalCalls"] == 0
        assert (await month_totals(client, 8, after))["month"]["totalCalls"] == 1


async def test_bad_zone_changes_are_bad_input_and_change_nothing(la_server, tmp_path):
    await agent_of(la_server.database_url, 9)
    current = Calendar.of_zone(LA).current()
    cases = [
        ("Mars/Olympus", str(current.next().next()), "IANA time zone"),
        ("Europe/Paris", str(current), "later than the customer's current month"),
        ("Europe/Paris", str(current.previous()), "later than the customer's current month"),
        ("Europe/Paris", "2027-13", "YYYY-MM"),
        ("Europe/Paris", "27-01", "YYYY-MM"),
    ]
    async with httpx.AsyncClient(base_url=la_server.base_url, timeout=30) as client:
        before = await graphql(client, CUSTOMER, {"u": "9"}, headers=ADMIN)
        for zone, month, message in cases:
            found = await graphql(client, SET_ZONE, {"u": "9", "tz": zone, "from": month}, headers=ADMIN)
            error = found["errors"][0]
            assert error["extensions"]["code"] == "BAD_USER_INPUT" and message in error["message"], found
        assert await graphql(client, CUSTOMER, {"u": "9"}, headers=ADMIN) == before
    env = server_env(la_server.database_url, BILLING_TIMEZONE=LA)
    for zone, month, message in cases:
        result = run_cli(
            ["customer", "timezone", "--user", "9", "--tz", zone, "--from", month], env, tmp_path
        )
        assert result.returncode != 0 and message in result.stderr, result
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    shown = run_cli(["customer", "show", "--user", "9"], env, tmp_path)
    assert shown.returncode == 0 and f"billing time zone: {LA}" in shown.stdout, shown
    changed = run_cli(
        ["customer", "timezone", "--user", "9", "--tz", "Europe/Paris", "--from", str(current.next().next())],
        env,
        tmp_path,
    )
    assert changed.returncode == 0 and f"Europe/Paris from {current.next().next()}" in changed.stdout, changed
    # A customer never seen is shown in the default zone; a wrong BILLING_TIMEZONE is one line.
    assert f"billing time zone: {LA}" in run_cli(["customer", "show", "--user", "404"], env, tmp_path).stdout
    wrong = run_cli(["customer", "show", "--user", "9"], dict(env, BILLING_TIMEZONE="Nowhere/Land"), tmp_path)
    assert wrong.returncode != 0 and "BILLING_TIMEZONE" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
