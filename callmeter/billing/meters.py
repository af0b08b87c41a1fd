"""Meters: the rest of a voice AI call's cost (LLM tokens, TTS characters, STT seconds, ...). Pure.

A plan prices a meter per `unit_size` units. A month's charge for a meter is rate x quantity / unit
size over the whole month, rounded half-up to the cent once; each usage event costs what it added to
that charge, so the events' costs always add up to it exactly, in any order (as calls' costs do).
A meter the plan does not price is recorded at cost 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from callmeter.billing.money import EXACT, MAX_PLACES, format_usd, round_cents

# The call's own minutes, as a component of its cost: not a meter events may name.
TELEPHONY_MINUTES = "telephony_minutes"
METER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_QUANTITY = Decimal(10) ** 12
MAX_UNIT_SIZE = Decimal(10) ** 12
MAX_RATE = Decimal(1_000_000)
MAX_METER_RATES = 50
MAX_MONTH_CHARGE = Decimal(10) ** 11  # what a meter's month may cost: inside the money columns
_DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")


class MeterError(ValueError):
    pass


@dataclass(frozen=True)
class MeterRate:
    meter: str
    unit_size: Decimal
    rate_per_unit: Decimal


@dataclass(frozen=True)
class MeterTotal:
    """A meter's month, as stored: how much was used and what it was charged."""

    meter: str
    quantity: Decimal
    charge_usd: Decimal


def check_meter_name(name: str) -> str:
    if not isinstance(name, str) or METER_NAME.fullmatch(name) is None:
        raise MeterError(f"meter must match [a-z][a-z0-9_]{{0,63}}, got {str(name)[:70]!r}")
    if name == TELEPHONY_MINUTES:
        raise MeterError(f"{TELEPHONY_MINUTES} is the call's own minutes, priced by the plan's rates")
    return name


def _places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def parse_quantity(value: object) -> Decimal:
    """An event's quantity: a decimal (text or a whole number), positive, at most 10^12, at most six
    decimal places. JSON's 12.0 is the whole number 12; other JSON fractions are refused (a float
    cannot hold 0.1 exactly)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MeterError('quantity must be a decimal number given as a string, e.g. "1523" or "12.5"')
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value.strip()):
        # ASCII digits only: Decimal() would take "1_000", "1e3" and other scripts' digits.
        raise MeterError(f'quantity {value[:30]!r} is not a number like "1523" or "12.5"')
    try:
        quantity = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise MeterError(f"quantity {str(value)[:30]!r} is not a number") from None
    if not quantity.is_finite() or quantity <= 0:
        raise MeterError(f"quantity must be positive, got {str(value)[:30]!r}")
    if quantity > MAX_QUANTITY:
        raise MeterError(f"quantity must be at most {MAX_QUANTITY:.0f}")
    if _places(quantity) > MAX_PLACES:
        raise MeterError(f"quantity may have at most {MAX_PLACES} decimal places, got {str(value)[:30]!r}")
    return quantity


def validate_meter_rates(rates: Sequence[MeterRate]) -> tuple[MeterRate, ...]:
    """The plan's meter rates, or a MeterError naming the first problem."""
    if len(rates) > MAX_METER_RATES:
        raise MeterError(f"a plan prices at most {MAX_METER_RATES} meters")
    seen: set[str] = set()
    for rate in rates:
        check_meter_name(rate.meter)
        if rate.meter in seen:
            raise MeterError(f"meter {rate.meter} is priced twice")
        seen.add(rate.meter)
        if not rate.unit_size.is_finite() or not 0 < rate.unit_size <= MAX_UNIT_SIZE:
            raise MeterError(f"unitSize of {rate.meter} must be above 0 and at most {MAX_UNIT_SIZE:.0f}")
        if _places(rate.unit_size) > MAX_PLACES:
            raise MeterError(f"unitSize of {rate.meter} may have at most {MAX_PLACES} decimal places")
        if not rate.rate_per_unit.is_finite() or not 0 <= rate.rate_per_unit <= MAX_RATE:
            raise MeterError(f"ratePerUnit of {rate.meter} must be between 0 and {MAX_RATE}")
        if _places(rate.rate_per_unit) > MAX_PLACES:
            raise MeterError(f"ratePerUnit of {rate.meter} may have at most {MAX_PLACES} decimal places")
    return tuple(rates)


def meter_charge(rate: MeterRate | None, quantity: Decimal) -> Decimal:
    """A month's charge for `quantity` of a meter, rounded half-up to the cent once."""
    if rate is None:
        return Decimal("0.00")
    exact = EXACT.divide(EXACT.multiply(rate.rate_per_unit, quantity), rate.unit_size)
    return round_cents(exact)


def check_month_charge(meter: str, month: object, charge: Decimal) -> None:
    if charge > MAX_MONTH_CHARGE:
        raise MeterError(
            f"these events would take {meter}'s charge for {month} past ${MAX_MONTH_CHARGE:,.0f}"
        )


def rate_events(
    rate: MeterRate | None, *, quantity_before: Decimal, charge_before: Decimal, quantities: Sequence[Decimal]
) -> list[Decimal]:
    """Each event's cost, in order: what it added to the month's charge. The first one also takes
    up any difference between the stored charge and the charge of `quantity_before` (none, unless
    the plan changed since), so the stored charge plus the costs is always the month's charge."""
    costs, total, charged = [], quantity_before, charge_before
    for quantity in quantities:
        total += quantity
        charge = meter_charge(rate, total)
        costs.append(charge - charged)
        charged = charge
    return costs


def telephony(billable_seconds: int, cost_usd: Decimal) -> MeterTotal:
    """A call's own minutes as a cost component: billable seconds / 60, four decimal places."""
    minutes = EXACT.divide(Decimal(billable_seconds), Decimal(60)).quantize(Decimal("0.0001"), context=EXACT)
    return MeterTotal(TELEPHONY_MINUTES, minutes, cost_usd)


def rate_of(rates: Sequence[MeterRate], meter: str) -> MeterRate | None:
    return next((rate for rate in rates if rate.meter == meter), None)


def describe_rate(rate: MeterRate) -> str:
    """e.g. `llm_tokens at $0.002 per 1000`."""
    places = max(2, _places(rate.rate_per_unit.normalize()))
    unit = rate.unit_size.normalize()
    per = "each" if unit == 1 else f"per {unit:f}"
    return f"{rate.meter} at {format_usd(rate.rate_per_unit, places=places)} {per}"


def meter_lines(
    rates: Sequence[MeterRate], totals: Sequence[MeterTotal]
) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(description, quantity in units of the rate's unit size, rate per unit, amount) for each
    priced meter used, by name."""
    lines = []
    for total in sorted(totals, key=lambda total: total.meter):
        rate = rate_of(rates, total.meter)
        if rate is None:
            continue
        units = EXACT.divide(total.quantity, rate.unit_size)
        lines.append((f"Usage of {describe_rate(rate)}", units, rate.rate_per_unit, total.charge_usd))
    return lines
