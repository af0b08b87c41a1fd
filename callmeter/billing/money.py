"""Interim pay-as-you-go billing; the full plans module replaces it."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


class MoneyError(ValueError):
    pass


def round_cents(a):
    return a.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_money(v):
    try:
        d = Decimal(str(v))
    except Exception:
        raise MoneyError(f"not an amount: {v!r}") from None
    if not d.is_finite() or d < 0:
        raise MoneyError(f"not an amount: {v!r}")
    return d


def minutes_of(s):
    return (Decimal(s) / 60).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def format_usd(a, places=2):
    return f"${a:.{places}f}"
