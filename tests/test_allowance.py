"""Spend control's pure rules: running costs, the gate's decision and max_duration_seconds, limits,
grants and the credit an invoice applies (billing/allowance.py, limits.py, credits.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callmeter.billing.allowance import (
    OpenMonth,
    Refusal,
    available,
    decide,
    first_reaching,
    reason_to_end,
)
from callmeter.billing.credits import CreditError, MonthDraw, check_grant, credits_applied
from callmeter.billing.limits import LimitError, Limits, check_limits
from callmeter.billing.plans import Plan, PlanKind, Tier, billable_seconds, fixed_fee, usage_charge
from callmeter.months import Month
from tests.test_billing import plans

M = Month(2026, 10)
PAYG = Plan("p", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("0.06"))
BY_MINUTE = Plan("m", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("0.06"), billing_increment_seconds=60)
SUB = Plan(
    "s",
    PlanKind.SUBSCRIPTION,
    monthly_fee_usd=D("20"),
    included_minutes=10,
    overage_rate_per_minute=D("0.10"),
)


def month_of(
    plan: Plan, *, billable: int = 0, running: tuple[int, ...] = (), recorded: bool = True
) -> OpenMonth:
    return OpenMonth(M, plan, billable, usage_charge(plan, billable), recorded, running)


def test_running_cost_is_what_the_calls_would_add_if_they_ended_now():
    month = month_of(BY_MINUTE, billable=600, running=(1, 61))
    assert month.running_billable == 60 + 120
    assert month.running_cost == D("0.18")
    assert month.spend_now == D("0.60") + D("0.18")
    # A subscription month's fee is charged to a balance with its first call.
    fresh = month_of(SUB, running=(30,), recorded=False)
    assert fresh.draw_now == D("20.00")
    assert month_of(SUB, running=(30,)).draw_now == D("0.00")


@settings(max_examples=400, deadline=None)
@given(
    plan=plans(),
    billable=st.integers(0, 400_000),
    running=st.lists(st.integers(0, 4000), max_size=3),
    headroom=st.decimals(min_value=D("0.01"), max_value=D("40"), places=2),
)
def test_max_duration_is_the_shortest_length_whose_cost_reaches_the_headroom(
    plan, billable, running, headroom
):
    month = month_of(plan, billable=billable, running=tuple(running))
    found = first_reaching(month, headroom)
    if found is None:
        # Then no call up to a long search bound reaches it: check a sample of lengths.
        assert all(month.new_call_cost(s) < headroom for s in range(1, 20_000, 37))
        return
    assert month.new_call_cost(found) >= headroom
    # Every shorter call costs less: checked exhaustively near the answer and sampled below it.
    shorter = set(range(max(1, found - 400), found)) | set(range(1, found, max(1, found // 500)))
    assert all(month.new_call_cost(s) < headroom for s in shorter)


def test_max_duration_on_a_volume_plan_follows_the_tier_the_month_reaches():
    # 0.10/min up to 10 min, then 0.01/min for every minute: the month gets cheaper at 10 min.
    plan = Plan(
        "v", PlanKind.VOLUME, tiers=(Tier(10, D("0.10")), Tier(None, D("0.01"))), billing_increment_seconds=60
    )
    month = month_of(plan)
    # $0.50 is reached in the 5th minute (billed by the minute); $1.00 (10 min) then is the most a
    # call reaches before 11 minutes reprice the month at 0.01/min: $1.01 comes at 101 minutes.
    assert first_reaching(month, D("0.50")) == 241
    assert first_reaching(month, D("1.00")) == 541
    assert first_reaching(month, D("1.01")) == 6001


def test_decide_refuses_in_order_balance_then_cap_then_concurrency():
    months = {M: month_of(BY_MINUTE, billable=6000)}  # $6.00 spent this month
    limits = Limits(monthly_spend_cap_usd=D("6.00"), max_concurrent_calls=1)
    assert decide(limits=limits, balance=D(0), months=months, current=M, active_calls=1).reason is (
        Refusal.BALANCE_EXHAUSTED
    )
    assert decide(limits=limits, balance=None, months=months, current=M, active_calls=1).reason is (
        Refusal.SPEND_CAP_REACHED
    )
    relaxed = Limits(monthly_spend_cap_usd=D("7.00"), max_concurrent_calls=1)
    assert decide(limits=relaxed, balance=None, months=months, current=M, active_calls=1).reason is (
        Refusal.CONCURRENCY_LIMIT
    )
    allowed = decide(limits=relaxed, balance=D("0.30"), months=months, current=M, active_calls=0)
    assert allowed.allowed and allowed.reason is None
    # $0.30 at 0.06/min billed by the minute is used up in the 5th minute (before the cap's $1.00).
    assert allowed.max_duration_seconds == 241
    per_second = {M: month_of(PAYG, billable=6000)}
    # By the second, the month's charge is rounded once: 6295 s make $6.295, rounded to $6.30.
    assert (
        decide(
            limits=relaxed, balance=D("0.30"), months=per_second, current=M, active_calls=0
        ).max_duration_seconds
        == 295
    )
    assert (
        decide(limits=Limits(), balance=None, months=months, current=M, active_calls=50).max_duration_seconds
        is None
    )


def test_available_subtracts_running_costs_of_every_open_month():
    months = [month_of(PAYG, running=(60,)), OpenMonth(Month(2026, 9), PAYG, 0, D(0), True, (120,))]
    assert available(D("1.00"), months) == D("0.82")
    assert available(None, months) is None


def test_enforcement_ends_calls_at_zero_available_or_at_the_cap():
    enforce = Limits(monthly_spend_cap_usd=D("5.00"), enforce=True)
    assert reason_to_end(enforce, available_usd=D("0.00"), spend_usd=D(1)) is Refusal.BALANCE_EXHAUSTED
    assert reason_to_end(enforce, available_usd=None, spend_usd=D("5.00")) is Refusal.SPEND_CAP_REACHED
    assert reason_to_end(enforce, available_usd=D(1), spend_usd=D("4.99")) is None
    assert reason_to_end(Limits(monthly_spend_cap_usd=D(1)), available_usd=D(-1), spend_usd=D(9)) is None


@pytest.mark.parametrize(
    "limits",
    [
        Limits(monthly_spend_cap_usd=D(-1)),
        Limits(monthly_spend_cap_usd=D("1.001")),
        Limits(monthly_spend_cap_usd=D("1e12")),
        Limits(monthly_spend_cap_usd=D("NaN")),
        Limits(max_concurrent_calls=-1),
        Limits(max_concurrent_calls=10**9),
        Limits(low_balance_usd=D("-0.01")),
    ],
)
def test_absurd_limits_are_refused(limits):
    with pytest.raises(LimitError):
        check_limits(limits)


@pytest.mark.parametrize(
    ("amount", "key"),
    [(D(0), "k"), (D(-5), "k"), (D("1.005"), "k"), (D("1e9"), "k"), (D(1), ""), (D(1), "a\nb")],
)
def test_bad_grants_are_refused(amount, key):
    with pytest.raises(CreditError):
        check_grant(amount, key)


def test_a_month_draws_what_its_total_cost_changed_by_since_the_first_grant():
    assert MonthDraw(None, D(0)).due(D(50)) == 0  # postpaid: nothing to draw
    assert MonthDraw(D("10.00"), D("2.00")).due(D("15.00")) == D("3.00")
    assert MonthDraw(D("10.00"), D("2.00")).due(D("11.00")) == D("-1.00")  # a refund


@settings(max_examples=300, deadline=None)
@given(
    charged=st.decimals(min_value=D(-50), max_value=D(50), places=2),
    charges=st.decimals(min_value=D(-50), max_value=D(100), places=2),
    left=st.decimals(min_value=D(-20), max_value=D(100), places=2),
)
def test_credits_applied_never_exceed_the_charges_or_the_credit_left(charged, charges, left):
    applied = credits_applied(charged_usd=charged, invoice_charges_usd=charges, credit_left_usd=left)
    if charged >= 0:
        assert D(0) <= applied <= max(D(0), min(charged, charges, left))
    else:
        assert max(charged, min(charges, D(0))) <= applied <= 0


@settings(max_examples=200, deadline=None)
@given(plan=plans(), durations=st.lists(st.integers(0, 3000), min_size=1, max_size=6))
def test_running_cost_equals_what_completing_the_calls_would_charge(plan, durations):
    month = month_of(plan, running=tuple(durations), recorded=False)
    completed = usage_charge(plan, sum(billable_seconds(plan, d) for d in durations))
    assert month.running_cost == completed
    assert month.draw_now == completed + fixed_fee(plan)
