"""A customer's spending limits, and the checks that keep them sensible. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from callmeter.billing.money import CENT

# Bounds on what a limit may be: beyond them a value is a mistake, not a limit.
MAX_LIMIT_USD = Decimal(1_000_000_000)
MAX_CONCURRENT_CALLS = 100_000


class LimitError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    """None is no limit. `enforce` also ends calls in progress when a limit is reached."""

    monthly_spend_cap_usd: Decimal | None = None
    max_concurrent_calls: int | None = None
    enforce: bool = False
    low_balance_usd: Decimal | None = None


NO_LIMITS = Limits()


def check_limits(limits: Limits) -> Limits:
    """The limits, or a LimitError naming the first value that cannot be one."""
    for name, amount in (
        ("monthlySpendCapUsd", limits.monthly_spend_cap_usd),
        ("lowBalanceUsd", limits.low_balance_usd),
    ):
        if amount is None:
            continue
        if not amount.is_finite() or amount < 0:
            raise LimitError(f"{name} must be an amount of 0 or more, got {amount}")
        if amount > MAX_LIMIT_USD:
            raise LimitError(f"{name} must be at most {MAX_LIMIT_USD}")
        if amount != amount.quantize(CENT):
            raise LimitError(f"{name} must be whole cents, e.g. 100.00, got {amount}")
    calls = limits.max_concurrent_calls
    if calls is not None and not 0 <= calls <= MAX_CONCURRENT_CALLS:
        raise LimitError(f"maxConcurrentCalls must be between 0 and {MAX_CONCURRENT_CALLS}, got {calls}")
    return limits
