"""Spend control end to end: prepaid credits, limits, the call gate (REST, GraphQL, the Twilio voice
gate) and hang-up enforcement, through `callmeter serve` over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import httpx

from callmeter.db import credits
from callmeter.months import UTC_CALENDAR
from tests.factories import (
    add_agent,
    auth,
    batches,
    call_events,
    callback_form,
    graphql,
    open_db,
    post_callback,
    run_cli,
    server_env,
    sign,
    start_server,
)
from tests.fake_twilio import start_fake_twilio

ADMIN = auth(1, admin=True)
ACCOUNT = "AC" + "f" * 32
GRANT = """mutation($u: ID!, $a: Decimal!, $k: String!, $d: String) {
  grantCredits(userId: $u, amountUsd: $a, idempotencyKey: $k, description: $d) {
    id amountUsd description createdAt balanceAfterUsd } }"""
CUSTOMER = """query($u: ID) { customer(userId: $u) { balanceUsd availableUsd
  limits { monthlySpendCapUsd maxConcurrentCalls enforce lowBalanceUsd } } }"""
SET_LIMITS = """mutation($u: ID!, $in: LimitsInput!) { setLimits(userId: $u, input: $in) {
  limits { monthlySpendCapUsd maxConcurrentCalls enforce lowBalanceUsd } } }"""
ALLOWANCE = """query($a: ID!) { callAllowance(agentId: $a) { allowed reason authorizationId
  maxDurationSeconds availableUsd activeCalls } }"""
CURRENT = """query($u: ID) { usage(userId: $u) { current { totalCostUsd } } }"""
CALL = """query($u: ID, $sid: String!) { usage(userId: $u) { call(callSid: $sid) { status costUsd
  terminatedReason } } }"""


def sid(n: int, user: int) -> str:
    return f"CA{user:04d}{n:028d}"


def recently(seconds: int = 600) -> datetime:
    """An instant a little while ago, in this month (or, on its first minutes, the month before)."""
    return datetime.now(UTC) - timedelta(seconds=seconds)


async def complete(client, base_url: str, agent: int, call_sid: str, *, duration: int, at: datetime) -> None:
    for form in call_events(call_sid, answered_at=at, duration=duration):
        response = await post_callback(client, base_url, form, query=f"agent_id={agent}")
        assert response.status_code == 200, response.text


async def answer(client, base_url: str, agent: int, call_sid: str, *, at: datetime, query: str = "") -> None:
    """A call answered at `at` and still going (no `completed` yet)."""
    for form in call_events(call_sid, answered_at=at, duration=1)[:3]:
        response = await post_callback(client, base_url, form, query=f"agent_id={agent}{query}")
        assert response.status_code == 200, response.text


def error_code(body: dict) -> str:
    return body["errors"][0]["extensions"]["code"]


async def customer_of(client, user: int) -> dict:
    return (await graphql(client, CUSTOMER, {"u": str(user)}, headers=ADMIN))["data"]["customer"]


async def spent(client, user: int) -> Decimal:
    body = await graphql(client, CURRENT, {"u": str(user)}, headers=ADMIN)
    return Decimal(body["data"]["usage"]["current"]["totalCostUsd"])


async def authorize(client, agent: object, headers: dict, query: str = "") -> httpx.Response:
    return await client.post(f"/api/calls/authorize{query}", json={"agent_id": agent}, headers=headers)


async def test_grants_are_idempotent_and_each_completed_call_draws_the_balance_exactly(server, client):
    agent = await add_agent(server.database_url, user_id=2, name="ana", numbers=[])
    at = recently()
    await complete(client, server.base_url, agent, sid(0, 2), duration=120, at=at)  # before any grant
    assert (await customer_of(client, 2))["balanceUsd"] is None
    before = await spent(client, 2)

    first = (
        await graphql(client, GRANT, {"u": "2", "a": "10.00", "k": "g1", "d": "welcome"}, headers=ADMIN)
    )["data"]["grantCredits"]
    assert (first["amountUsd"], first["balanceAfterUsd"], first["description"]) == (
        "10.00",
        "10.00",
        "welcome",
    )
    again = await graphql(client, GRANT, {"u": "2", "a": "10.00", "k": "g1"}, headers=ADMIN)
    assert again["data"]["grantCredits"] == first
    bad_grants = (("11.00", "g1"), ("0.001", "g2"), ("-5", "g3"), ("0", "g4"), ("1e30", "g6"), ("NaN", "g7"))
    for amount, key in bad_grants:
        body = await graphql(client, GRANT, {"u": "2", "a": amount, "k": key}, headers=ADMIN)
        assert error_code(body) == "BAD_USER_INPUT", body
    assert (
        error_code(await graphql(client, GRANT, {"u": "2", "a": "5", "k": "g5"}, headers=auth(2)))
        == "FORBIDDEN"
    )

    # Thirty calls complete at once, every event twice, in any order: each draws its cost once.
    rng = random.Random(14)
    deliveries = []
    for n in range(1, 31):
        events = call_events(sid(n, 2), answered_at=at, duration=rng.randint(1, 900))
        deliveries += events + events
    rng.shuffle(deliveries)
    for batch in batches(deliveries, 24):
        responses = await asyncio.gather(
            *(post_callback(client, server.base_url, form, query=f"agent_id={agent}") for form in batch)
        )
        assert {response.status_code for response in responses} == {200}
    charged = await spent(client, 2) - before
    customer = await customer_of(client, 2)
    assert Decimal(customer["balanceUsd"]) == Decimal("10.00") - charged
    assert customer["availableUsd"] == customer["balanceUsd"]  # nothing in progress
    db = await open_db(server.database_url)
    try:
        async with db.connection() as conn:
            assert await credits.ledger_sum(conn, user_id=2) == Decimal(customer["balanceUsd"])
    finally:
        await db.disconnect()

    # A call in progress for two minutes: available is the balance less what it would cost now.
    await answer(client, server.base_url, agent, sid(99, 2), at=datetime.now(UTC) - timedelta(seconds=120))
    customer = await customer_of(client, 2)
    running = Decimal(customer["balanceUsd"]) - Decimal(customer["availableUsd"])
    assert Decimal("0.10") <= running <= Decimal("0.11")


async def test_limits_are_replaced_whole_and_bad_values_change_nothing(server, client, tmp_path):
    wanted = {
        "monthlySpendCapUsd": "50.00",
        "maxConcurrentCalls": 3,
        "enforce": True,
        "lowBalanceUsd": "5.00",
    }
    body = await graphql(client, SET_LIMITS, {"u": "3", "in": wanted}, headers=ADMIN)
    assert body["data"]["setLimits"]["limits"] == wanted
    body = await graphql(client, SET_LIMITS, {"u": "3", "in": {"maxConcurrentCalls": 1}}, headers=ADMIN)
    assert body["data"]["setLimits"]["limits"] == {
        "monthlySpendCapUsd": None,
        "maxConcurrentCalls": 1,
        "enforce": False,
        "lowBalanceUsd": None,
    }
    for bad in (
        {"maxConcurrentCalls": -1},
        {"monthlySpendCapUsd": "-3"},
        {"lowBalanceUsd": "1e15"},
        {"monthlySpendCapUsd": "1e30"},
    ):
        body = await graphql(client, SET_LIMITS, {"u": "3", "in": bad}, headers=ADMIN)
        assert error_code(body) == "BAD_USER_INPUT", body
    assert error_code(await graphql(client, SET_LIMITS, {"u": "3", "in": {}}, headers=auth(3))) == "FORBIDDEN"
    assert (await customer_of(client, 3))["limits"]["maxConcurrentCalls"] == 1

    env = server_env(server.database_url)
    shown = run_cli(["limits", "set", "--user", "3", "--spend-cap", "20", "--enforce"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "monthly spend cap: $20.00" in shown.stdout and "enforce: yes" in shown.stdout
    bad = run_cli(["limits", "set", "--user", "3", "--max-concurrent", "-2"], env, tmp_path)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "maxConcurrentCalls" in bad.stderr
    granted = run_cli(
        ["credits", "grant", "--user", "3", "--amount", "7.50", "--key", "cli-1"], env, tmp_path
    )
    assert granted.returncode == 0 and "balance $7.50" in granted.stdout, granted.stderr
    again = run_cli(["credits", "grant", "--user", "3", "--amount", "8", "--key", "cli-1"], env, tmp_path)
    assert again.returncode != 0 and again.stderr.count("\n") == 1 and "cli-1" in again.stderr
    assert (await customer_of(client, 3))["balanceUsd"] == "7.50"


async def test_the_gate_allows_refuses_in_order_and_holds_slots(server, client):
    agent = await add_agent(server.database_url, user_id=4, name="bo", numbers=[])
    other = await add_agent(server.database_url, user_id=5, name="cy", numbers=[])
    limits = {"monthlySpendCapUsd": "1.00", "maxConcurrentCalls": 2}
    await graphql(client, SET_LIMITS, {"u": "4", "in": limits}, headers=ADMIN)
    mine = auth(4)

    first = (await authorize(client, agent, mine)).json()
    # $1.00 at $0.05 a minute, billed by the second: the month's rounded charge reaches it at 1194 s.
    assert first == {
        "allowed": True,
        "authorization_id": first["authorization_id"],
        "max_duration_seconds": 1194,
        "available_usd": None,
        "active_calls": 1,
    }
    for _ in range(2):  # read-only: holds nothing
        seen = (await graphql(client, ALLOWANCE, {"a": str(agent)}, headers=mine))["data"]["callAllowance"]
        assert seen == {
            "allowed": True,
            "reason": None,
            "authorizationId": None,
            "maxDurationSeconds": 1194,
            "availableUsd": None,
            "activeCalls": 1,
        }
    assert (await authorize(client, agent, mine)).json()["active_calls"] == 2
    refused = (await authorize(client, agent, mine)).json()
    assert refused == {
        "allowed": False,
        "reason": "concurrency_limit",
        "max_duration_seconds": None,
        "available_usd": None,
        "active_calls": 2,
    }

    # The call shows up with its authorization_id: it takes its slot over, then ends and frees it.
    call = sid(1, 4)
    ring = callback_form(call, "ringing", sequence=1, at=recently(30))
    query = f"agent_id={agent}&authorization_id={first['authorization_id']}"
    assert (await post_callback(client, server.base_url, ring, query=query)).status_code == 200
    assert (await graphql(client, ALLOWANCE, {"a": str(agent)}, headers=mine))["data"]["callAllowance"][
        "activeCalls"
    ] == 2
    await complete(client, server.base_url, agent, call, duration=1200, at=recently(1300))  # $1.00
    # The cap is reached now: it comes before the free slot.
    assert (await authorize(client, agent, mine)).json()["reason"] == "spend_cap_reached"
    # A prepaid customer at 0 available: balance first.
    await graphql(client, GRANT, {"u": "4", "a": "0.01", "k": "tiny"}, headers=ADMIN)
    await complete(client, server.base_url, agent, sid(2, 4), duration=60, at=recently(100))
    assert (await authorize(client, agent, mine)).json()["reason"] == "balance_exhausted"

    # Bad input is 400, someone else's agent 403, none 404, no token 401.
    for body in ({"agent_id": "x"}, {"agent_id": True}, {"agent_id": 0}, {}, [1]):
        response = await client.post("/api/calls/authorize", json=body, headers=mine)
        assert response.status_code == 400, body
    response = await client.post("/api/calls/authorize", content=b"{not json", headers=mine)
    assert response.status_code == 400 and response.json()["code"] == "BAD_USER_INPUT"
    assert (await authorize(client, other, mine)).status_code == 403
    assert (await authorize(client, 999_999, mine)).status_code == 404
    assert (await authorize(client, agent, {})).status_code == 401
    assert (await authorize(client, other, ADMIN, "?user_id=5")).json()["allowed"] is True
    assert (await authorize(client, other, ADMIN, "?user_id=4")).status_code == 403
    assert error_code(await graphql(client, ALLOWANCE, {"a": str(other)}, headers=mine)) == "FORBIDDEN"


async def race(base_urls: list[str], agent: int, requests: int) -> list[bool]:
    async with httpx.AsyncClient(timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    base_urls[n % len(base_urls)] + "/api/calls/authorize",
                    json={"agent_id": agent},
                    headers=auth(6),
                )
                for n in range(requests)
            )
        )
    assert {response.status_code for response in responses} == {200}
    return [response.json()["allowed"] for response in responses]


async def test_simultaneous_requests_for_k_free_slots_get_exactly_k(server, client, tmp_path):
    agent = await add_agent(server.database_url, user_id=6, name="di", numbers=[])
    await graphql(client, SET_LIMITS, {"u": "6", "in": {"maxConcurrentCalls": 5}}, headers=ADMIN)
    assert sum(await race([server.base_url], agent, 24)) == 5
    if server.database_url.startswith("sqlite"):
        return
    # Several processes on PostgreSQL: the customer's row lock keeps the count exact across them.
    await graphql(client, SET_LIMITS, {"u": "6", "in": {"maxConcurrentCalls": 12}}, headers=ADMIN)
    second = start_server(server.database_url, tmp_path)
    try:
        assert sum(await race([server.base_url, second.base_url], agent, 30)) == 7
    finally:
        second.stop()


async def post_voice(
    client, base_url: str, agent: int, call_sid: str, *, signed: bool = True
) -> httpx.Response:
    url = f"{base_url}/webhooks/twilio/voice?agent_id={agent}"
    form = {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": "+15550001111", "To": "+18449263376"}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers["X-Twilio-Signature"] = sign(url, form) if signed else "bad"
    return await client.post(url, content=urlencode(form), headers=headers)


CREATE_AGENT = """mutation($u: ID!, $v: String) { createAgent(input: {userId: $u, name: "eve",
  phoneNumbers: ["+15557770000"], voiceUrl: $v}) { id voiceUrl } }"""


async def test_the_voice_gate_redirects_to_the_agent_or_rejects_busy(server, client):
    created = await graphql(
        client, CREATE_AGENT, {"u": "7", "v": "https://agent.example/voice?x=1&y=2"}, headers=ADMIN
    )
    agent = int(created["data"]["createAgent"]["id"])
    assert created["data"]["createAgent"]["voiceUrl"] == "https://agent.example/voice?x=1&y=2"
    await graphql(client, SET_LIMITS, {"u": "7", "in": {"maxConcurrentCalls": 1}}, headers=ADMIN)

    allowed = await post_voice(client, server.base_url, agent, sid(1, 7))
    assert allowed.status_code == 200 and allowed.headers["content-type"].startswith("text/xml")
    assert allowed.text == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Redirect method="POST">'
        "https://agent.example/voice?x=1&amp;y=2</Redirect></Response>"
    )
    busy = await post_voice(client, server.base_url, agent, sid(2, 7))
    assert busy.text == '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'
    # The first call's callbacks take its slot over (by CallSid); once it ends the next is allowed.
    await complete(client, server.base_url, agent, sid(1, 7), duration=30, at=recently(60))
    assert "<Redirect" in (await post_voice(client, server.base_url, agent, sid(3, 7))).text

    assert (await post_voice(client, server.base_url, agent, sid(4, 7), signed=False)).status_code == 403
    plain = await add_agent(server.database_url, user_id=7, name="no-url", numbers=[])
    assert (await post_voice(client, server.base_url, plain, sid(5, 7))).status_code == 400
    assert (await post_voice(client, server.base_url, 999_999, sid(6, 7))).status_code == 404
    for url in ("ftp://nope", "https://agent.example:99999/", "https://[::1", "https://x.example:port/"):
        bad = await graphql(client, CREATE_AGENT, {"u": "7", "v": url}, headers=ADMIN)
        assert error_code(bad) == "BAD_USER_INPUT", (url, bad)


async def wait_for(condition, timeout: float) -> float:
    started = asyncio.get_running_loop().time()
    while not condition():
        if asyncio.get_running_loop().time() - started > timeout:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)
    return asyncio.get_running_loop().time() - started


async def test_enforcement_hangs_up_once_retries_twilio_and_bills_as_usual(private_database, tmp_path):
    clean_database = private_database
    fake, twilio = start_fake_twilio()
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_BASE": f"http://127.0.0.1:{twilio.server_port}"}
    servers = [start_server(clean_database, tmp_path, **env)]
    if not clean_database.startswith("sqlite"):  # two processes: still one hang-up per call
        servers.append(start_server(clean_database, tmp_path, **env))
    try:
        async with httpx.AsyncClient(base_url=servers[0].base_url, timeout=30) as client:
            capped = await add_agent(clean_database, user_id=8, name="cap", numbers=[])
            prepaid = await add_agent(clean_database, user_id=9, name="pre", numbers=[])
            cap = {"monthlySpendCapUsd": "0.50", "enforce": True}
            await graphql(client, SET_LIMITS, {"u": "8", "in": cap}, headers=ADMIN)
            await graphql(client, SET_LIMITS, {"u": "9", "in": {"enforce": True}}, headers=ADMIN)
            await graphql(client, GRANT, {"u": "9", "a": "0.10", "k": "p"}, headers=ADMIN)

            # 0.05/min: 700 s running is $0.58, past the cap; 180 s is $0.15, past the $0.10 balance.
            fake.failures_left = 2  # Twilio fails twice first: retried with backoff
            over_cap, over_balance = sid(1, 8), sid(1, 9)
            await answer(
                client, servers[0].base_url, capped, over_cap, at=datetime.now(UTC) - timedelta(seconds=700)
            )
            await answer(
                client,
                servers[-1].base_url,
                prepaid,
                over_balance,
                at=datetime.now(UTC) - timedelta(seconds=180),
            )
            took = await wait_for(lambda: len(fake.hang_ups) >= 2, timeout=15)
            await asyncio.sleep(3)  # more passes, in every process: nothing is sent again
            assert sorted(fake.hang_ups) == sorted([over_cap, over_balance])
            assert took < 10
            for user, call, reason in (
                (8, over_cap, "spend_cap_reached"),
                (9, over_balance, "balance_exhausted"),
            ):
                body = await graphql(client, CALL, {"u": str(user), "sid": call}, headers=ADMIN)
                assert body["data"]["usage"]["call"]["terminatedReason"] == reason
            log = "".join(server.log() for server in servers)
            assert "hang-up attempt 1 failed: Twilio answered 500" in log

            # Twilio's completed callback after the hang-up bills the call as usual.
            ended = callback_form(over_cap, "completed", sequence=3, at=datetime.now(UTC), duration=703)
            assert (
                await post_callback(client, servers[0].base_url, ended, query=f"agent_id={capped}")
            ).status_code == 200
            body = await graphql(client, CALL, {"u": "8", "sid": over_cap}, headers=ADMIN)
            assert body["data"]["usage"]["call"]["status"] == "COMPLETED"
            assert body["data"]["usage"]["call"]["costUsd"] == "0.59"
    finally:
        for server in servers:
            server.stop()
        twilio.shutdown()


FINALIZE = """mutation($m: String!) { finalizeInvoices(month: $m) { month totalUsd
  lines { description amountUsd } } }"""


async def test_invoices_apply_prepaid_credit_up_to_what_was_drawn(server, client):
    last = UTC_CALENDAR.current().previous()
    at = datetime(last.year, last.month, 15, 12, tzinfo=UTC)
    covered = await add_agent(server.database_url, user_id=10, name="full", numbers=[])
    short = await add_agent(server.database_url, user_id=11, name="short", numbers=[])
    await graphql(client, GRANT, {"u": "10", "a": "5.00", "k": "a"}, headers=ADMIN)
    await graphql(client, GRANT, {"u": "11", "a": "1.00", "k": "b"}, headers=ADMIN)
    await complete(client, server.base_url, covered, sid(1, 10), duration=1440, at=at)  # $1.20
    await complete(client, server.base_url, short, sid(1, 11), duration=1800, at=at)  # $1.50
    invoices = (await graphql(client, FINALIZE, {"m": str(last)}, headers=ADMIN))["data"]["finalizeInvoices"]
    assert len(invoices) == 2
    by_total = {invoice["totalUsd"]: invoice["lines"] for invoice in invoices}
    assert by_total["0.00"][-1] == {"description": "Prepaid credits applied", "amountUsd": "-1.20"}
    assert by_total["0.50"][-1] == {"description": "Prepaid credits applied", "amountUsd": "-1.00"}
    assert (await customer_of(client, 10))["balanceUsd"] == "3.80"
    assert (await customer_of(client, 11))["balanceUsd"] == "-0.50"
    # Finalizing again changes nothing.
    again = (await graphql(client, FINALIZE, {"m": str(last)}, headers=ADMIN))["data"]["finalizeInvoices"]
    assert sorted(i["totalUsd"] for i in again) == ["0.00", "0.50"]


async def test_a_subscription_fee_is_charged_with_the_months_first_call(server, client):
    user = 12
    plan = await graphql(
        client,
        """mutation { createPlan(input: {name: "Pro", kind: SUBSCRIPTION, monthlyFeeUsd: "20.00",
        includedMinutes: 10, overageRatePerMinute: "0.10"}) { id } }""",
        headers=ADMIN,
    )
    month = UTC_CALENDAR.month_of(recently())
    await graphql(
        client,
        "mutation($u: ID!, $p: ID!, $m: String!) { assignPlan(userId: $u, planId: $p, fromMonth: $m) "
        "{ id } }",
        {"u": str(user), "p": plan["data"]["createPlan"]["id"], "m": str(month)},
        headers=ADMIN,
    )
    agent = await add_agent(server.database_url, user_id=user, name="sub", numbers=[])
    await graphql(client, GRANT, {"u": str(user), "a": "50.00", "k": "s"}, headers=ADMIN)
    assert (await customer_of(client, user))["balanceUsd"] == "50.00"
    await complete(client, server.base_url, agent, sid(1, user), duration=60, at=recently())  # included
    assert (await customer_of(client, user))["balanceUsd"] == "30.00"
    await complete(
        client, server.base_url, agent, sid(2, user), duration=660, at=recently()
    )  # 12 min in all: 2 over
    assert (await customer_of(client, user))["balanceUsd"] == "29.80"


async def test_the_gate_prices_each_open_month_by_the_plan_in_force_then(server, client):
    """The gate reads a customer's plan schedule, stored months and calls in progress together: a
    call still going from an earlier month runs at that month's plan and after that month's stored
    usage, the new call at this month's plan."""
    user = 14
    old = await graphql(
        client,
        """mutation { createPlan(input: {name: "Old", kind: SUBSCRIPTION, monthlyFeeUsd: "0.00",
        includedMinutes: 600, overageRatePerMinute: "0.60"}) { id } }""",
        headers=ADMIN,
    )
    new = await graphql(
        client,
        'mutation { createPlan(input: {name: "New", kind: PAY_AS_YOU_GO, ratePerMinute: "0.06"}) { id } }',
        headers=ADMIN,
    )
    started = datetime.now(UTC) - timedelta(days=35)
    assign = (
        "mutation($u: ID!, $p: ID!, $m: String!) { assignPlan(userId: $u, planId: $p, fromMonth: $m) { id } }"
    )
    this_month = UTC_CALENDAR.month_of(datetime.now(UTC))
    for plan, month in ((old, "2000-01"), (new, str(this_month))):
        body = await graphql(
            client, assign, {"u": str(user), "p": plan["data"]["createPlan"]["id"], "m": month}, headers=ADMIN
        )
        assert "errors" not in body, body
    agent = await add_agent(server.database_url, user_id=user, name="long", numbers=[])
    await graphql(client, GRANT, {"u": str(user), "a": "100000.00", "k": "big"}, headers=ADMIN)
    # Ten included minutes used in the old month, then a call there that is still going.
    await complete(client, server.base_url, agent, sid(1, user), duration=600, at=started)
    await answer(client, server.base_url, agent, sid(2, user), at=started + timedelta(minutes=20))

    before = datetime.now(UTC)
    decision = (await authorize(client, agent, auth(user))).json()
    after = datetime.now(UTC)
    assert decision["allowed"] is True and decision["active_calls"] == 2, decision
    # The running call's overage: its seconds past the 590 included minutes left, at $0.01 a second.
    elapsed = [(moment - started - timedelta(minutes=20)).total_seconds() for moment in (before, after)]
    available = Decimal(decision["available_usd"])
    assert Decimal("0.01") * int(elapsed[0] - 1 - 35_400) <= Decimal(100000) - available
    assert Decimal(100000) - available <= Decimal("0.01") * int(elapsed[1] + 2 - 35_400)
    # What is left buys the new call seconds at $0.001 (this month's $0.06 a minute).
    assert abs(Decimal(decision["max_duration_seconds"]) * Decimal("0.001") - available) <= Decimal("0.02")
