"""Plans, re-rating, invoices and Stripe, end to end: callbacks in, invoices and Stripe requests out."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.factories import add_agent, auth, call_events, graphql, post_callback, run_cli, server_env
from tests.fake_stripe import start_fake_stripe

ADMIN = auth(1, admin=True)
JANUARY = datetime(2026, 1, 10, 9, tzinfo=UTC)
CREATE_PLAN = "mutation($p: PlanInput!) { createPlan(input: $p) { id name kind } }"
ASSIGN = (
    "mutation($u: ID!, $p: ID!, $m: String!) { assignPlan(userId: $u, planId: $p, fromMonth: $m) { id } }"
)
MONTH = """query($u: ID, $m: String!) { usage(userId: $u) { month(month: $m) { totalCalls totalSeconds
  usageChargeUsd fixedFeeUsd totalCostUsd plan { id name kind } } } }"""
INVOICE = """query($u: ID, $m: String!) { usage(userId: $u) { invoice(month: $m) { number month status
  totalUsd stripeInvoiceId pdfUrl lines { position description quantity unitPriceUsd amountUsd } } } }"""
CALLS = """query($u: ID) { usage(userId: $u) { calls(first: 500) { edges { node { costUsd } } } } }"""
INVOICES = """query($u: ID) { usage(userId: $u) { invoices { month status number totalUsd } } }"""
FINALIZE = "mutation($m: String!) { finalizeInvoices(month: $m) { month totalUsd } }"

TIERS = [
    {"upToMinutes": 500, "ratePerMinute": "0.06"},
    {"upToMinutes": 2000, "ratePerMinute": "0.04"},
    {"upToMinutes": None, "ratePerMinute": "0.02"},
]
PLANS = {
    "graduated": {"name": "Tiered", "kind": "GRADUATED", "tiers": TIERS},
    "volume": {"name": "Volume", "kind": "VOLUME", "tiers": TIERS},
    "subscription": {
        "name": "Pro",
        "kind": "SUBSCRIPTION",
        "monthlyFeeUsd": "49",
        "includedMinutes": 1000,
        "overageRatePerMinute": "0.05",
    },
    "per-minute": {
        "name": "Per minute",
        "kind": "PAY_AS_YOU_GO",
        "ratePerMinute": "0.05",
        "billingIncrementSeconds": 60,
    },
}


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def payg(seconds: int) -> Decimal:
    """The default plan's charge (PRICE_PER_MINUTE 0.05), computed here independently."""
    return cents(Decimal("0.05") * seconds / 60)


def adjustments_for(invoice: dict, month: str) -> list[dict]:
    return [line for line in invoice["lines"] if line["description"].startswith(f"Adjustment for {month}")]


async def create_plan(client, spec: dict) -> str:
    body = await graphql(client, CREATE_PLAN, {"p": spec}, headers=ADMIN)
    assert "errors" not in body, body
    return body["data"]["createPlan"]["id"]


async def send_calls(client, server, *, number: str, durations: list[int], start: datetime, prefix: str):
    for index, duration in enumerate(durations):
        sid = f"CA{prefix}{index:030x}"[:34]
        for form in call_events(
            sid, answered_at=start + timedelta(hours=index), duration=duration, to=number
        ):
            assert (await post_callback(client, server.base_url, form)).status_code == 200


@pytest.mark.parametrize(
    "plan, durations, usage_charge, fee",
    [
        ("graduated", [60 * 1250, 60 * 1250], "100.00", "0.00"),
        ("volume", [60 * 1250, 60 * 1250], "50.00", "0.00"),
        ("subscription", [60 * 700, 60 * 500], "10.00", "49.00"),
        ("per-minute", [61, 61, 1], "0.25", "0.00"),
    ],
)
async def test_a_user_on_each_plan_is_billed_by_it(server, client, plan, durations, usage_charge, fee):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    plan_id = await create_plan(client, PLANS[plan])
    assert "errors" not in await graphql(
        client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-01"}, headers=ADMIN
    )
    await send_calls(client, server, number="+15550000002", durations=durations, start=JANUARY, prefix="a")
    month = (await graphql(client, MONTH, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["month"]
    assert month["usageChargeUsd"] == usage_charge and month["fixedFeeUsd"] == fee
    assert Decimal(month["totalCostUsd"]) == Decimal(usage_charge) + Decimal(fee)
    assert month["plan"] == {"id": plan_id, "name": PLANS[plan]["name"], "kind": PLANS[plan]["kind"]}
    costs = (await graphql(client, CALLS, headers=auth(2)))["data"]["usage"]["calls"]["edges"]
    assert sum(Decimal(edge["node"]["costUsd"]) for edge in costs) == Decimal(usage_charge)
    draft = (await graphql(client, INVOICE, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["invoice"]
    assert draft["status"] == "DRAFT" and draft["number"] is None
    assert Decimal(draft["totalUsd"]) == Decimal(usage_charge) + Decimal(fee)
    assert sum(Decimal(line["amountUsd"]) for line in draft["lines"]) == Decimal(draft["totalUsd"])
    finalized = await graphql(
        client,
        'mutation { finalizeInvoices(month: "2026-01") { number month status totalUsd } }',
        headers=ADMIN,
    )
    (invoice,) = finalized["data"]["finalizeInvoices"]
    assert invoice["status"] == "FINALIZED" and invoice["number"].startswith("CM-202601-")
    assert invoice["totalUsd"] == draft["totalUsd"]


async def test_calls_inside_the_included_minutes_cost_nothing(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    plan_id = await create_plan(client, PLANS["subscription"])
    await graphql(client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-01"}, headers=ADMIN)
    await send_calls(
        client, server, number="+15550000002", durations=[60 * 999, 120], start=JANUARY, prefix="b"
    )
    costs = [
        edge["node"]["costUsd"]
        for edge in (await graphql(client, CALLS, headers=auth(2)))["data"]["usage"]["calls"]["edges"]
    ]
    assert sorted(costs) == ["0.00", "0.05"]  # the second call crosses 1000 min by one minute


async def test_assigning_a_plan_re_rates_the_month_exactly(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    await send_calls(
        client,
        server,
        number="+15550000002",
        durations=[60 * 1000, 60 * 1000, 60 * 500],
        start=JANUARY,
        prefix="c",
    )
    before = (await graphql(client, MONTH, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["month"]
    assert before["usageChargeUsd"] == "125.00" and before["plan"]["id"] == "default"
    plan_id = await create_plan(client, PLANS["graduated"])
    await graphql(client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-01"}, headers=ADMIN)
    after = (await graphql(client, MONTH, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["month"]
    assert after["usageChargeUsd"] == "100.00" and after["totalCalls"] == 3
    costs = [
        Decimal(edge["node"]["costUsd"])
        for edge in (await graphql(client, CALLS, headers=auth(2)))["data"]["usage"]["calls"]["edges"]
    ]
    assert sorted(costs) == [Decimal("10.00"), Decimal("40.00"), Decimal("50.00")]


async def test_a_late_event_after_finalization_becomes_an_adjustment(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    await send_calls(client, server, number="+15550000002", durations=[600], start=JANUARY, prefix="d")
    finalized = await graphql(
        client, 'mutation { finalizeInvoices(month: "2026-01") { number totalUsd } }', headers=ADMIN
    )
    (january,) = finalized["data"]["finalizeInvoices"]
    assert january["totalUsd"] == "0.50"
    # A call of January whose callbacks arrive only now.
    await send_calls(client, server, number="+15550000002", durations=[120], start=JANUARY, prefix="e")
    again = (await graphql(client, INVOICE, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["invoice"]
    assert (
        again["status"] == "FINALIZED"
        and again["totalUsd"] == "0.50"
        and again["number"] == january["number"]
    )
    february = (await graphql(client, INVOICE, {"m": "2026-02"}, headers=auth(2)))["data"]["usage"]["invoice"]
    adjustment = [
        line for line in february["lines"] if line["description"].startswith("Adjustment for 2026-01")
    ]
    assert len(adjustment) == 1 and adjustment[0]["amountUsd"] == "0.10"
    assert "+1 call" in adjustment[0]["description"]
    finalized = await graphql(
        client, 'mutation { finalizeInvoices(month: "2026-02") { month totalUsd } }', headers=ADMIN
    )
    assert finalized["data"]["finalizeInvoices"] == [{"month": "2026-02", "totalUsd": "0.10"}]
    march = (await graphql(client, INVOICE, {"m": "2026-03"}, headers=auth(2)))["data"]["usage"]["invoice"]
    assert not [line for line in march["lines"] if line["description"].startswith("Adjustment")]


SMALL_SUBSCRIPTION = {
    "name": "Sub",
    "kind": "SUBSCRIPTION",
    "monthlyFeeUsd": "49",
    "includedMinutes": 60,
    "overageRatePerMinute": "0.05",
}


async def test_re_rating_an_invoiced_month_bills_the_whole_difference_once(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    await send_calls(client, server, number="+15550000002", durations=[696], start=JANUARY, prefix="h")
    finalized = await graphql(client, FINALIZE, {"m": "2026-01"}, headers=ADMIN)
    assert finalized["data"]["finalizeInvoices"] == [{"month": "2026-01", "totalUsd": str(payg(696))}]
    billed = payg(696)  # 0.58
    # A late January call, then January (already invoiced) moves to a subscription.
    await send_calls(client, server, number="+15550000002", durations=[1200], start=JANUARY, prefix="i")
    plan_id = await create_plan(client, SMALL_SUBSCRIPTION)
    assert "errors" not in await graphql(
        client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-01"}, headers=ADMIN
    )
    january = (await graphql(client, MONTH, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["month"]
    fee = Decimal("49.00")
    overage = lambda seconds: cents(Decimal("0.05") * max(0, seconds - 3600) / 60)  # noqa: E731
    assert Decimal(january["totalCostUsd"]) == fee + overage(696 + 1200) == Decimal("49.00")
    february = (await graphql(client, INVOICE, {"m": "2026-02"}, headers=auth(2)))["data"]["usage"]["invoice"]
    (line,) = adjustments_for(february, "2026-01")
    assert Decimal(line["amountUsd"]) == fee - billed == Decimal("48.42")
    assert "re-rated on plan Sub" in line["description"]
    assert "+1 call, +20.0 min after invoicing" in line["description"]
    assert Decimal(february["totalUsd"]) == fee + (fee - billed)  # February's own fee, and January's
    # Finalizing February carries the adjustment once: March has none.
    finalized = await graphql(client, FINALIZE, {"m": "2026-02"}, headers=ADMIN)
    assert finalized["data"]["finalizeInvoices"] == [{"month": "2026-02", "totalUsd": february["totalUsd"]}]
    march = (await graphql(client, INVOICE, {"m": "2026-03"}, headers=auth(2)))["data"]["usage"]["invoice"]
    assert adjustments_for(march, "2026-01") == []
    # A further change bills only the new difference, and is not called a re-rating again.
    await send_calls(client, server, number="+15550000002", durations=[3000], start=JANUARY, prefix="j")
    january = (await graphql(client, MONTH, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["month"]
    assert Decimal(january["totalCostUsd"]) == fee + overage(696 + 1200 + 3000) == Decimal("50.08")
    march = (await graphql(client, INVOICE, {"m": "2026-03"}, headers=auth(2)))["data"]["usage"]["invoice"]
    (line,) = adjustments_for(march, "2026-01")
    assert Decimal(line["amountUsd"]) == overage(696 + 1200 + 3000) == Decimal("1.08")
    assert line["description"] == "Adjustment for 2026-01: +1 call, +50.0 min after invoicing"
    await graphql(client, FINALIZE, {"m": "2026-03"}, headers=ADMIN)
    # What January's invoice and the adjustments carried for it add up to is January's total now.
    carried = Decimal(0)
    for month in ("2026-02", "2026-03", "2026-04"):
        invoice = (await graphql(client, INVOICE, {"m": month}, headers=auth(2)))["data"]["usage"]["invoice"]
        carried += sum(Decimal(line["amountUsd"]) for line in adjustments_for(invoice, "2026-01"))
    assert billed + carried == Decimal(january["totalCostUsd"])


async def test_assigning_the_default_plan_re_rates_back_to_pay_as_you_go(server, client, tmp_path):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    plan_id = await create_plan(client, SMALL_SUBSCRIPTION)
    await graphql(client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-01"}, headers=ADMIN)
    durations = [4000, 61]
    await send_calls(client, server, number="+15550000002", durations=durations, start=JANUARY, prefix="k")
    finalized = await graphql(client, FINALIZE, {"m": "2026-01"}, headers=ADMIN)
    on_sub = Decimal("49.00") + cents(Decimal("0.05") * (sum(durations) - 3600) / 60)
    assert finalized["data"]["finalizeInvoices"] == [{"month": "2026-01", "totalUsd": str(on_sub)}]
    body = await graphql(client, ASSIGN, {"u": "2", "p": "default", "m": "2026-01"}, headers=ADMIN)
    assert body["data"]["assignPlan"] == {"id": "default"}
    january = (await graphql(client, MONTH, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["month"]
    assert january["plan"] == {"id": "default", "name": "Pay as you go", "kind": "PAY_AS_YOU_GO"}
    assert january["fixedFeeUsd"] == "0.00"
    assert Decimal(january["totalCostUsd"]) == payg(sum(durations)) == Decimal("3.38")
    costs = (await graphql(client, CALLS, headers=auth(2)))["data"]["usage"]["calls"]["edges"]
    assert sum(Decimal(edge["node"]["costUsd"]) for edge in costs) == payg(sum(durations))
    february = (await graphql(client, INVOICE, {"m": "2026-02"}, headers=auth(2)))["data"]["usage"]["invoice"]
    (line,) = adjustments_for(february, "2026-01")
    assert Decimal(line["amountUsd"]) == payg(sum(durations)) - on_sub
    assert line["description"] == "Adjustment for 2026-01: re-rated on plan Pay as you go"
    # The CLI takes "default" too; a later assignment of the default plan ends the subscription then.
    env = server_env(server.database_url)
    assert (
        cli(
            ["plan", "assign", "--user", "2", "--plan", plan_id, "--from", "2026-01"], env, tmp_path
        ).returncode
        == 0
    )
    done = cli(["plan", "assign", "--user", "2", "--plan", "default", "--from", "2026-03"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("user 2 is billed by plan default (Pay as you go) from 2026-03")
    for month, plan in (("2026-01", plan_id), ("2026-02", plan_id), ("2026-03", "default")):
        summary = (await graphql(client, MONTH, {"m": month}, headers=auth(2)))["data"]["usage"]["month"]
        assert summary["plan"]["id"] == plan, month
    bad = cli(["plan", "assign", "--user", "2", "--plan", "basic", "--from", "2026-01"], env, tmp_path)
    assert bad.returncode != 0 and bad.stderr.decode().count("\n") == 1


def months_between(first: str, last: str) -> list[str]:
    months, (year, month) = [], map(int, first.split("-"))
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return months


async def test_invoices_lists_a_draft_for_every_open_month_with_usage_or_a_fee(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    await send_calls(client, server, number="+15550000002", durations=[600], start=JANUARY, prefix="l")
    march = datetime(2026, 3, 5, 9, tzinfo=UTC)
    await send_calls(client, server, number="+15550000002", durations=[120], start=march, prefix="m")
    this_month = datetime.now(UTC).strftime("%Y-%m")

    async def listed() -> list[tuple[str, str, str]]:
        body = await graphql(client, INVOICES, headers=auth(2))
        return [
            (item["month"], item["status"], item["totalUsd"]) for item in body["data"]["usage"]["invoices"]
        ]

    assert await listed() == [
        (this_month, "DRAFT", "0.00"),
        ("2026-03", "DRAFT", str(payg(120))),
        ("2026-01", "DRAFT", str(payg(600))),
    ]
    await graphql(client, FINALIZE, {"m": "2026-01"}, headers=ADMIN)
    assert await listed() == [
        (this_month, "DRAFT", "0.00"),
        ("2026-03", "DRAFT", str(payg(120))),
        ("2026-01", "FINALIZED", str(payg(600))),
    ]
    # A subscription from September on: every month with its fee has a draft until it is finalized.
    plan_id = await create_plan(client, SMALL_SUBSCRIPTION)
    await graphql(client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-09"}, headers=ADMIN)
    fee_months = [(month, "DRAFT", "49.00") for month in reversed(months_between("2026-09", this_month))]
    assert await listed() == [
        *fee_months,
        ("2026-03", "DRAFT", str(payg(120))),
        ("2026-01", "FINALIZED", str(payg(600))),
    ]


async def test_invoice_lines_read_the_same_drafted_and_finalized(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    plan_id = await create_plan(client, SMALL_SUBSCRIPTION)
    await graphql(client, ASSIGN, {"u": "2", "p": plan_id, "m": "2026-01"}, headers=ADMIN)
    await send_calls(client, server, number="+15550000002", durations=[3600 + 690], start=JANUARY, prefix="n")
    draft = (await graphql(client, INVOICE, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["invoice"]
    await graphql(client, FINALIZE, {"m": "2026-01"}, headers=ADMIN)
    final = (await graphql(client, INVOICE, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["invoice"]
    assert final["status"] == "FINALIZED" and final["lines"] == draft["lines"]
    assert [line["quantity"] for line in final["lines"]] == ["1.0000", "11.5000"]  # the fee; minutes over
    assert [line["amountUsd"] for line in final["lines"]] == ["49.00", str(cents(Decimal("0.05") * 690 / 60))]


async def test_pricing_input_errors_and_permissions(server, client):
    body = await graphql(client, CREATE_PLAN, {"p": PLANS["graduated"]}, headers=auth(2))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad_tiers = {**PLANS["graduated"], "tiers": [{"upToMinutes": 500, "ratePerMinute": "0.06"}]}
    for spec in (
        bad_tiers,
        {"name": "x", "kind": "PAY_AS_YOU_GO"},
        {"name": "x", "kind": "PAY_AS_YOU_GO", "ratePerMinute": "-1"},
        {"name": "x", "kind": "PAY_AS_YOU_GO", "ratePerMinute": "1e30"},
        {**PLANS["subscription"], "monthlyFeeUsd": "1e30"},
        {**PLANS["subscription"], "monthlyFeeUsd": "10.005"},
        {**PLANS["subscription"], "name": "line\nbreak"},
        {**PLANS["graduated"], "tiers": [{"upToMinutes": None, "ratePerMinute": "1000000.000001"}]},
    ):
        body = await graphql(client, CREATE_PLAN, {"p": spec}, headers=ADMIN)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", spec
    body = await graphql(client, ASSIGN, {"u": "2", "p": "999", "m": "2026-01"}, headers=ADMIN)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    body = await graphql(client, ASSIGN, {"u": "2", "p": "1", "m": "Jan"}, headers=ADMIN)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    this_month = datetime.now(UTC).strftime("%Y-%m")
    body = await graphql(
        client, f'mutation {{ finalizeInvoices(month: "{this_month}") {{ month }} }}', headers=ADMIN
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await graphql(client, INVOICE, {"u": "3", "m": "2026-01"}, headers=auth(2))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_invoice_pdf_over_rest(server, client):
    await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
    await send_calls(client, server, number="+15550000002", durations=[600], start=JANUARY, prefix="f")
    response = await client.get("/api/invoices/2026-01.pdf", headers=auth(2))
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert (await client.get("/api/invoices/2026-01.pdf?user_id=3", headers=auth(2))).status_code == 403
    assert (await client.get("/api/invoices/2026-01.pdf")).status_code == 401
    assert (await client.get("/api/invoices/2026-1.pdf", headers=auth(2))).status_code == 400


def cli(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess[bytes]:
    return run_cli(args, env, cwd, binary=True)


async def test_cli_plans_invoices_and_stripe_push_with_idempotency(server, client, tmp_path):
    fake, stripe_server = start_fake_stripe()
    env = server_env(
        server.database_url,
        STRIPE_API_KEY="sk_test_callmeter",
        STRIPE_API_BASE=f"http://127.0.0.1:{stripe_server.server_port}",
    )
    try:
        await add_agent(server.database_url, user_id=2, name="agent", numbers=["+15550000002"])
        made = cli(
            [
                "plan",
                "add",
                "--name",
                "Pro",
                "--kind",
                "subscription",
                "--fee",
                "49",
                "--included",
                "1000",
                "--overage",
                "0.05",
            ],
            env,
            tmp_path,
        )
        assert made.returncode == 0, made.stderr
        plan_id = made.stdout.decode().split()[1]
        assigned = cli(
            ["plan", "assign", "--user", "2", "--plan", plan_id, "--from", "2026-01"], env, tmp_path
        )
        assert assigned.returncode == 0, assigned.stderr
        await send_calls(
            client, server, number="+15550000002", durations=[60 * 1200], start=JANUARY, prefix="g"
        )
        draft = json.loads(cli(["invoice", "--month", "2026-01", "--format", "json"], env, tmp_path).stdout)
        assert [(invoice["status"], invoice["total_usd"]) for invoice in draft] == [("DRAFT", "59.00")]
        csv_out = cli(["invoice", "--month", "2026-01", "--user", "2", "--format", "csv"], env, tmp_path)
        assert b"Overage beyond 1000 included min" in csv_out.stdout
        # Stripe unreachable: one line, nothing stored.
        down = {**env, "STRIPE_API_BASE": "http://127.0.0.1:1"}
        unreachable = cli(["invoice", "--month", "2026-01", "--finalize", "--stripe"], down, tmp_path)
        assert unreachable.returncode != 0 and unreachable.stderr.decode().count("\n") == 1
        assert b"could not reach Stripe" in unreachable.stderr
        # The first push fails at finalization; the retry must reuse every idempotency key (the
        # customer, kept as soon as Stripe made it, is not asked for again).
        fake.fail_once.add("/finalize")
        failed = cli(["invoice", "--month", "2026-01", "--finalize", "--stripe"], env, tmp_path)
        assert failed.returncode != 0
        assert failed.stderr.decode().count("\n") == 1 and b"Stripe" in failed.stderr
        first_keys = [request.idempotency_key for request in fake.requests]
        pushed = cli(["invoice", "--month", "2026-01", "--stripe", "--format", "json"], env, tmp_path)
        assert pushed.returncode == 0, pushed.stderr
        (invoice,) = json.loads(pushed.stdout)
        retry_keys = [request.idempotency_key for request in fake.requests[len(first_keys) :]]
        assert first_keys[0] == "callmeter-customer-2" and None not in first_keys
        assert retry_keys == first_keys[1:]
        assert invoice["status"] == "FINALIZED" and invoice["stripe_invoice_id"].startswith("in_")
        items = [request.form for request in fake.posts("/v1/invoiceitems")]
        assert sorted(int(item["amount"]) for item in items[:2]) == [1000, 4900]  # cents
        assert {item["currency"] for item in items} == {"usd"}
        assert fake.requests[0].authorization == "Bearer sk_test_callmeter"
        # Pushed once: a third run sends nothing more.
        count = len(fake.requests)
        assert cli(["invoice", "--month", "2026-01", "--stripe"], env, tmp_path).returncode == 0
        assert len(fake.requests) == count
        text = cli(["invoice", "--month", "2026-01"], env, tmp_path).stdout.decode()
        assert "Stripe invoice in_" in text and "$59.00" in text
        assert re.search(r" 1 x +\$49\.0000 ", text) and re.search(r" 200 x +\$0\.0500 ", text), text
        pdf = cli(["invoice", "--month", "2026-01", "--format", "pdf"], env, tmp_path)
        assert pdf.stdout.startswith(b"%PDF")
        gql = (await graphql(client, INVOICE, {"m": "2026-01"}, headers=auth(2)))["data"]["usage"]["invoice"]
        assert gql["stripeInvoiceId"] == invoice["stripe_invoice_id"]
        bad = cli(["plan", "add", "--name", "x", "--kind", "graduated", "--tier", "500"], env, tmp_path)
        assert bad.returncode != 0 and bad.stderr.decode().count("\n") == 1
    finally:
        stripe_server.shutdown()
