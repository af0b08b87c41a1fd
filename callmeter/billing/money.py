"""Money: `Decimal` only, one rounding rule (half-up to the cent), and parsing at the edge."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
MAX_PLACES = 6

# Exact intermediate arithmetic, independent of the thread's global decimal context.
EXACT = Context(prec=60, rounding=ROUND_HALF_UP)


class MoneyError(ValueError):
    pass


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP, context=EXACT)


def parse_money(value: str | int | Decimal) -> Decimal:
    """An amount from configuration or input: finite, not negative, at most 6 decimal places."""
    if isinstance(value, float | bool):
        raise MoneyError(f"amounts must be given as text or Decimal, not {type(value).__name__}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError, TypeError):
        raise MoneyError(f"{str(value)[:30]!r} is not an amount") from None
    if not amount.is_finite():
        raise MoneyError(f"{str(value)[:30]!r} is not a finite amount")
    if amount < 0:
        raise MoneyError(f"{amount} is negative")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_PLACES:
        raise MoneyError(f"{amount} has more than {MAX_PLACES} decimal places")
    return amount


def per_minute(rate: Decimal, seconds: int) -> Decimal:
    """The exact price of `seconds` at `rate` per minute (not rounded)."""
    return EXACT.divide(EXACT.multiply(rate, Decimal(seconds)), Decimal(60))


def minutes_of(seconds: int) -> Decimal:
    """Seconds as minutes, rounded half-up to one decimal place (7410 s -> 123.5)."""
    return EXACT.divide(Decimal(seconds), Decimal(60)).quantize(TENTH, rounding=ROUND_HALF_UP)


def format_usd(amount: Decimal, places: int = 2) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = amount.quantize(quantum, rounding=ROUND_HALF_UP, context=EXACT)
    return f"-${-rounded}" if rounded < 0 else f"${rounded}"
