"""Money and plans: hand-computed examples, and properties over every plan and every order of calls."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callmeter.billing.adjustments import Adjustment
from callmeter.billing.invoices import build_invoice_lines, invoice_total, usage_lines
from callmeter.billing.money import MoneyError, format_usd, minutes_of, parse_money, round_cents
from callmeter.billing.plans import (
    Plan,
    PlanError,
    PlanKind,
    Tier,
    billable_seconds,
    fixed_fee,
    pay_as_you_go,
    usage_charge,
    validate_plan,
)
from callmeter.billing.rating import rate_call, rate_month
from callmeter.months import Month

TIERS = (Tier(500, D("0.06")), Tier(2000, D("0.04")), Tier(None, D("0.02")))
GRADUATED = Plan("Tiered", PlanKind.GRADUATED, tiers=TIERS)
VOLUME = Plan("Volume", PlanKind.VOLUME, tiers=TIERS)
SUBSCRIPTION = Plan(
    "Pro",
    PlanKind.SUBSCRIPTION,
    monthly_fee_usd=D("49"),
    included_minutes=1000,
    overage_rate_per_minute=D("0.05"),
)
PAYG = pay_as_you_go(D("0.05"))


def test_the_issues_hand_computed_examples():
    assert usage_charge(GRADUATED, 2500 * 60) == D("100.00")
    assert usage_charge(VOLUME, 2500 * 60) == D("50.00")
    assert usage_charge(SUBSCRIPTION, 1200 * 60) + fixed_fee(SUBSCRIPTION) == D("59.00")
    assert usage_charge(SUBSCRIPTION, 900 * 60) == D("0.00")


def test_increments_and_minimums_on_61_seconds():
    six = Plan("6s", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("0.05"), billing_increment_seconds=6)
    minute = Plan("60s", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("0.05"), billing_increment_seconds=60)
    minimum = Plan("min", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("0.05"), minimum_billable_seconds=30)
    assert billable_seconds(six, 61) == 66 and usage_charge(six, 66) == D("0.06")  # 0.055 half-up
    assert billable_seconds(minute, 61) == 120 and usage_charge(minute, 120) == D("0.10")
    assert billable_seconds(minimum, 10) == 30 and billable_seconds(minimum, 45) == 45
    assert billable_seconds(minimum, 0) == 0  # an unanswered second is never billed


def test_pay_as_you_go_and_half_up_rounding():
    assert usage_charge(PAYG, 145) == D("0.12")
    assert usage_charge(PAYG, 7410) == D("6.18")
    assert usage_charge(PAYG, 6) == D("0.01")  # exactly half a cent rounds up
    assert round_cents(D("0.125")) == D("0.13") and round_cents(D("0.135")) == D("0.14")
    assert minutes_of(7410) == D("123.5") and minutes_of(3) == D("0.1") and minutes_of(2) == D("0.0")


def test_volume_bound_stays_in_the_lower_tier():
    assert usage_charge(VOLUME, 500 * 60) == D("30.00")
    assert usage_charge(VOLUME, 500 * 60 + 1) == round_cents(D("0.04") * (30001) / 60)


def test_money_parsing_rejects_what_is_not_an_amount():
    assert parse_money("0.05") == D("0.05") and parse_money(49) == D(49)
    for bad in ("abc", "-1", "NaN", "Infinity", "0.0000001", 0.05, ""):
        with pytest.raises(MoneyError):
            parse_money(bad)
    assert format_usd(D("0.1"), places=4) == "$0.1000" and format_usd(D("-1.5")) == "-$1.50"


@pytest.mark.parametrize(
    "plan, problem",
    [
        (Plan("x", PlanKind.PAY_AS_YOU_GO), "ratePerMinute"),
        (Plan("x", PlanKind.GRADUATED), "tiers"),
        (Plan("x", PlanKind.GRADUATED, tiers=(Tier(500, D(1)),)), "last tier"),
        (
            Plan("x", PlanKind.VOLUME, tiers=(Tier(500, D(1)), Tier(100, D(1)), Tier(None, D(1)))),
            "increasing",
        ),
        (Plan("x", PlanKind.VOLUME, tiers=(Tier(None, D(1)), Tier(None, D(1)))), "only the last"),
        (Plan("x", PlanKind.SUBSCRIPTION, monthly_fee_usd=D(49)), "overageRatePerMinute"),
        (Plan("x", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D(1), included_minutes=5), "SUBSCRIPTION only"),
        (Plan("x", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D(-1)), "negative"),
        (Plan("x", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("1e30")), "ratePerMinute must be at most"),
        (
            Plan("x", PlanKind.SUBSCRIPTION, monthly_fee_usd=D("1000000.01"), overage_rate_per_minute=D(0)),
            "monthlyFeeUsd must be at most",
        ),
        (
            Plan("x", PlanKind.SUBSCRIPTION, included_minutes=2**31, overage_rate_per_minute=D(0)),
            "includedMinutes",
        ),
        (Plan("x", PlanKind.VOLUME, tiers=(Tier(2**40, D(1)), Tier(None, D(1)))), "tier bounds"),
        (Plan("x", PlanKind.VOLUME, tiers=(Tier(5, D(1)), Tier(None, D("1e7")))), r"tiers\[1\]"),
        (Plan("x", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D(1), billing_increment_seconds=0), "Increment"),
        (Plan(" ", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D(1)), "name"),
        (Plan("x\n", PlanKind.PAY_AS_YOU_GO, rate_per_minute=D(1)), "line breaks"),
        (
            Plan("x", PlanKind.SUBSCRIPTION, monthly_fee_usd=D("10.005"), overage_rate_per_minute=D(0)),
            "whole cents",
        ),
    ],
)
def test_validate_plan_names_the_problem(plan, problem):
    with pytest.raises(PlanError, match=problem):
        validate_plan(plan)


rates = st.decimals(min_value=D(0), max_value=D("2"), places=4)


@st.composite
def plans(draw) -> Plan:
    kind = draw(st.sampled_from(list(PlanKind)))
    common = {
        "billing_increment_seconds": draw(st.sampled_from([1, 6, 30, 60])),
        "minimum_billable_seconds": draw(st.sampled_from([0, 0, 10, 60])),
    }
    if kind is PlanKind.PAY_AS_YOU_GO:
        return validate_plan(Plan("p", kind, rate_per_minute=draw(rates), **common))
    if kind is PlanKind.SUBSCRIPTION:
        return validate_plan(
            Plan(
                "p",
                kind,
                monthly_fee_usd=draw(st.decimals(min_value=D(0), max_value=D(100), places=2)),
                included_minutes=draw(st.integers(0, 3000)),
                overage_rate_per_minute=draw(rates),
                **common,
            )
        )
    bounds = sorted(draw(st.sets(st.integers(1, 5000), max_size=4)))
    tiers = tuple(Tier(bound, draw(rates)) for bound in bounds) + (Tier(None, draw(rates)),)
    return validate_plan(Plan("p", kind, tiers=tiers, **common))


durations = st.lists(st.integers(0, 7200), max_size=40)


@settings(max_examples=300, deadline=None)
@given(plan=plans(), calls=durations, order=st.randoms(use_true_random=False))
def test_per_call_costs_add_up_to_the_months_charge_in_any_order(plan, calls, order):
    shuffled = list(calls)
    order.shuffle(shuffled)
    for sequence in (calls, shuffled):
        before, total_cost = 0, D(0)
        for duration in sequence:
            charge = rate_call(plan, month_billable_before=before, duration_seconds=duration)
            before += charge.billable_seconds
            total_cost += charge.cost
        assert total_cost == usage_charge(plan, before)
        assert rate_month(plan, sequence) == [
            rate_call(
                plan,
                month_billable_before=sum(c.billable_seconds for c in rate_month(plan, sequence[:i])),
                duration_seconds=duration,
            )
            for i, duration in enumerate(sequence)
        ]
    assert before == sum(billable_seconds(plan, duration) for duration in calls)


@settings(max_examples=300, deadline=None)
@given(plan=plans(), seconds=st.integers(0, 400_000), more=st.integers(0, 10_000))
def test_charges_never_decrease_as_minutes_grow_except_volume(plan, seconds, more):
    if plan.kind is not PlanKind.VOLUME:
        assert usage_charge(plan, seconds + more) >= usage_charge(plan, seconds)
    assert usage_charge(plan, seconds) >= 0


@settings(max_examples=300, deadline=None)
@given(
    plan=plans(),
    seconds=st.integers(0, 400_000),
    adjustments=st.lists(st.decimals(min_value=D(-50), max_value=D(50), places=2), max_size=3),
)
def test_invoice_lines_add_up_to_fee_plus_usage_plus_adjustments(plan, seconds, adjustments):
    extra = [
        Adjustment(Month(2026, 1), 1, 60, 60, amount, None, None, description="late call")
        for amount in adjustments
    ]
    lines = build_invoice_lines(plan, month=Month(2026, 2), billable_seconds=seconds, adjustments=extra)
    assert invoice_total(lines) == fixed_fee(plan) + usage_charge(plan, seconds) + sum(adjustments, D(0))
    assert [line.position for line in lines] == list(range(1, len(lines) + 1))
    assert sum(row[3] for row in usage_lines(plan, seconds)) == usage_charge(plan, seconds)
