"""The meters' pure rules (billing/meters.py), with property tests: per-event costs add up to each
meter's month charge in any arrival order and with duplicates; invoice lines add up to the month."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callmeter.billing.invoices import build_invoice_lines, invoice_total
from callmeter.billing.meters import (
    MeterError,
    MeterRate,
    MeterTotal,
    check_meter_name,
    meter_charge,
    parse_quantity,
    rate_events,
    validate_meter_rates,
)
from callmeter.billing.plans import Plan, PlanError, PlanKind, usage_charge, validate_plan
from callmeter.months import Month

quantities = st.decimals(min_value=D("0.000001"), max_value=D(10) ** 9, places=6, allow_nan=False)
rates = st.builds(
    MeterRate,
    meter=st.sampled_from(["llm_tokens", "tts_characters", "stt_seconds"]),
    unit_size=st.sampled_from([D(1), D(60), D(1000), D("1000000"), D("0.5")]),
    rate_per_unit=st.decimals(min_value=D(0), max_value=D(100), places=6, allow_nan=False),
)


@given(
    rate=rates, events=st.lists(quantities, min_size=1, max_size=60), order=st.randoms(use_true_random=False)
)
def test_event_costs_add_up_to_the_month_charge_in_any_order_with_duplicates(rate, events, order):
    keyed = list(enumerate(events))
    arrivals = keyed + order.sample(keyed, len(keyed) // 3)  # some arrive twice
    order.shuffle(arrivals)
    seen, billed = set(), []
    for key, quantity in arrivals:  # what store_events does: a key is billed once
        if key not in seen:
            seen.add(key)
            billed.append(quantity)
    costs = rate_events(rate, quantity_before=D(0), charge_before=D("0.00"), quantities=billed)
    assert sum(costs, start=D("0.00")) == meter_charge(rate, sum(events, start=D(0)))
    assert all(cost == cost.quantize(D("0.01")) for cost in costs)


@given(
    rate=rates, first=st.lists(quantities, max_size=20), then=st.lists(quantities, min_size=1, max_size=20)
)
def test_batches_telescope_from_what_is_stored(rate, first, then):
    earlier = rate_events(rate, quantity_before=D(0), charge_before=D("0.00"), quantities=first)
    stored_quantity, stored_charge = sum(first, start=D(0)), sum(earlier, start=D("0.00"))
    later = rate_events(rate, quantity_before=stored_quantity, charge_before=stored_charge, quantities=then)
    assert stored_charge + sum(later, start=D("0.00")) == meter_charge(
        rate, stored_quantity + sum(then, start=D(0))
    )


def test_a_months_charge_is_rounded_once_half_up():
    tokens = MeterRate("llm_tokens", D(1000), D("0.002"))
    assert meter_charge(tokens, D(2500)) == D("0.01")  # 0.005 rounds up
    assert meter_charge(tokens, D(2499)) == D("0.00")
    # A thousand events of 1 token each cost 0.00 apiece but the month 0.00; ten thousand: 0.02.
    costs = rate_events(tokens, quantity_before=D(0), charge_before=D("0.00"), quantities=[D(1)] * 10_000)
    assert sum(costs) == D("0.02") and costs.count(D("0.01")) == 2
    assert meter_charge(None, D(10) ** 12) == D("0.00")  # a meter the plan does not price


def test_quantities_and_names_are_checked():
    assert (
        parse_quantity("1523") == D(1523)
        and parse_quantity(7) == D(7)
        and parse_quantity(" 12.5 ") == D("12.5")
    )
    assert parse_quantity(65.0) == D(65)
    for bad in (
        "0",
        "-1",
        "1000000000001",
        "1e400",
        "NaN",
        "Infinity",
        "abc",
        1.5,
        True,
        None,
        "1.0000001",
        "1_000",
        "1e3",
        "\u0661\u0662",
        "+5",
        " ",
        "5.",
    ):
        with pytest.raises(MeterError):
            parse_quantity(bad)
    assert check_meter_name("llm_tokens") == "llm_tokens"
    for bad in ("LLM", "1tokens", "", "a" * 65, "telephony_minutes", "tts-chars"):
        with pytest.raises(MeterError):
            check_meter_name(bad)


def test_a_plans_meter_rates_are_validated():
    good = MeterRate("llm_tokens", D(1000), D("0.002"))
    assert validate_meter_rates([good]) == (good,)
    for bad in (
        [good, good],
        [MeterRate("llm_tokens", D(0), D(1))],
        [MeterRate("llm_tokens", D(1), D(-1))],
        [MeterRate("llm_tokens", D(1), D("0.0000001"))],
        [MeterRate("Bad", D(1), D(1))],
    ):
        with pytest.raises(MeterError):
            validate_meter_rates(bad)
    with pytest.raises(PlanError):
        validate_plan(
            Plan(name="p", kind=PlanKind.PAY_AS_YOU_GO, rate_per_minute=D("0.05"), meter_rates=(good, good))
        )


@given(
    seconds=st.integers(0, 100_000),
    used=st.lists(
        st.tuples(st.sampled_from(["llm_tokens", "tts_characters", "stt_seconds"]), quantities), max_size=10
    ),
)
def test_invoice_lines_add_up_to_minutes_and_meters(seconds, used):
    plan = Plan(
        name="p",
        kind=PlanKind.PAY_AS_YOU_GO,
        rate_per_minute=D("0.05"),
        meter_rates=(
            MeterRate("llm_tokens", D(1000), D("0.002")),
            MeterRate("tts_characters", D(1), D("0.00003")),
        ),
    )
    totals: dict[str, D] = {}
    for meter, quantity in used:
        totals[meter] = totals.get(meter, D(0)) + quantity
    meters = [
        MeterTotal(
            meter,
            quantity,
            meter_charge(next((r for r in plan.meter_rates if r.meter == meter), None), quantity),
        )
        for meter, quantity in totals.items()
    ]
    lines = build_invoice_lines(plan, month=Month(2026, 12), billable_seconds=seconds, meters=meters)
    assert invoice_total(lines) == usage_charge(plan, seconds) + sum(
        (m.charge_usd for m in meters), start=D("0.00")
    )
    assert not any("stt_seconds" in line.description for line in lines)
