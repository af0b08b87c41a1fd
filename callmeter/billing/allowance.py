"""What a customer may still spend, and whether a new call may start and for how long. Pure.

A customer's open months are their stored totals plus the calls in progress. The running cost of
those calls is what they would add to their months if they all ended now (elapsed seconds at the
plan's increments, minimums, included minutes and tiers), so `available` and the month's spend are
exact to the cent. `max_duration_seconds` is the shortest length at which a new call's cost reaches
what is left (the cap, or the available balance): Twilio's `time_limit` ends it there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from callmeter.billing.limits import Limits
from callmeter.billing.plans import Plan, PlanKind, billable_seconds, fixed_fee, usage_charge
from callmeter.months import Month

# A call longer than this (31 years) is not a limit anyone needs: nothing limits it.
LONGEST_CALL_SECONDS = 1_000_000_000


class Refusal(StrEnum):
    """Why a call may not start: the first of these that applies, in this order."""

    BALANCE_EXHAUSTED = "balance_exhausted"
    SPEND_CAP_REACHED = "spend_cap_reached"
    CONCURRENCY_LIMIT = "concurrency_limit"


@dataclass(frozen=True)
class OpenMonth:
    """One month of a customer as it stands: completed calls as stored, and its calls in progress."""

    month: Month
    plan: Plan
    billable_seconds: int = 0
    usage_charge_usd: Decimal = Decimal("0.00")
    recorded: bool = False  # it has usage stored, so its fixed fee is charged already
    running: tuple[int, ...] = field(default=())  # elapsed seconds of each call in progress

    @property
    def running_billable(self) -> int:
        return sum(billable_seconds(self.plan, elapsed) for elapsed in self.running)

    @property
    def running_cost(self) -> Decimal:
        """What the calls in progress would add to the month's usage charge if they ended now."""
        before = self.billable_seconds
        return usage_charge(self.plan, before + self.running_billable) - usage_charge(self.plan, before)

    @property
    def unrecorded_fee(self) -> Decimal:
        """The fixed fee that the month's first completed call will charge."""
        return Decimal("0.00") if self.recorded else fixed_fee(self.plan)

    @property
    def spend_now(self) -> Decimal:
        """The month's total cost if its calls in progress ended now (what a spend cap compares)."""
        return fixed_fee(self.plan) + self.usage_charge_usd + self.running_cost

    @property
    def draw_now(self) -> Decimal:
        """What the calls in progress would take from a prepaid balance if they ended now."""
        return self.running_cost + (self.unrecorded_fee if self.running else Decimal("0.00"))

    def new_call_cost(self, seconds: int) -> Decimal:
        """What a new call of `seconds`, ending after the ones in progress, adds to the month."""
        before = self.billable_seconds + self.running_billable
        added = billable_seconds(self.plan, seconds)
        return usage_charge(self.plan, before + added) - usage_charge(self.plan, before)


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    reason: Refusal | None
    max_duration_seconds: int | None
    available_usd: Decimal | None
    active_calls: int
    spend_usd: Decimal  # the current month's spend, running costs included


def available(balance: Decimal | None, months: Sequence[OpenMonth]) -> Decimal | None:
    """The balance less what the calls in progress would draw; None for a postpaid customer."""
    if balance is None:
        return None
    return balance - sum((month.draw_now for month in months), start=Decimal("0.00"))


def decide(
    *,
    limits: Limits,
    balance: Decimal | None,
    months: Mapping[Month, OpenMonth],
    current: Month,
    active_calls: int,
) -> Allowance:
    """Whether one more call may start now, in the month `current` (which `months` must hold)."""
    this_month = months[current]
    left = available(balance, list(months.values()))
    spend = this_month.spend_now
    reason = None
    if left is not None and left <= 0:
        reason = Refusal.BALANCE_EXHAUSTED
    elif limits.monthly_spend_cap_usd is not None and spend >= limits.monthly_spend_cap_usd:
        reason = Refusal.SPEND_CAP_REACHED
    elif limits.max_concurrent_calls is not None and active_calls >= limits.max_concurrent_calls:
        reason = Refusal.CONCURRENCY_LIMIT
    longest = None
    if reason is None:
        limits_found = []
        if left is not None:
            # The month's first call also charges its fixed fee to the balance.
            fee = this_month.unrecorded_fee if not this_month.running else Decimal("0.00")
            limits_found.append(first_reaching(this_month, left, extra=fee))
        if limits.monthly_spend_cap_usd is not None:
            limits_found.append(first_reaching(this_month, limits.monthly_spend_cap_usd - spend))
        found = [seconds for seconds in limits_found if seconds is not None]
        longest = min(found) if found else None
    return Allowance(reason is None, reason, longest, left, active_calls, spend)


def first_reaching(month: OpenMonth, headroom: Decimal, *, extra: Decimal = Decimal(0)) -> int | None:
    """The shortest length (at least 1 s) at which a new call's cost plus `extra` reaches
    `headroom`; None if no call of up to LONGEST_CALL_SECONDS does."""

    def cost(seconds: int) -> Decimal:
        return extra + month.new_call_cost(seconds)

    # A call's cost only grows with its length, except on a VOLUME plan where reaching a cheaper
    # tier reprices the whole month: there it grows within each tier, so search tier by tier.
    for low, high in _monotone_spans(month):
        if cost(high) >= headroom:
            return _first(lambda seconds: cost(seconds) >= headroom, low, high)
    return None


def _monotone_spans(month: OpenMonth) -> list[tuple[int, int]]:
    """Ranges of call lengths over which the call's cost does not decrease, in order."""
    if month.plan.kind is not PlanKind.VOLUME:
        return [(1, LONGEST_CALL_SECONDS)]
    before = month.billable_seconds + month.running_billable
    plan = month.plan
    spans, low = [], 1
    for tier in plan.tiers:
        if tier.up_to_minutes is None:
            break
        bound = tier.up_to_minutes * 60
        # The longest call whose month stays within this tier.
        if before + billable_seconds(plan, low) > bound:
            continue
        high = _last(lambda seconds, bound=bound: before + billable_seconds(plan, seconds) <= bound, low)
        spans.append((low, high))
        low = high + 1
    if low <= LONGEST_CALL_SECONDS:
        spans.append((low, LONGEST_CALL_SECONDS))
    return spans


def _first(holds: Callable[[int], bool], low: int, high: int) -> int:
    """The least n in [low, high] for which `holds` (monotone: false then true; true at high)."""
    while low < high:
        middle = (low + high) // 2
        if holds(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _last(holds: Callable[[int], bool], low: int) -> int:
    """The greatest n >= low for which `holds` (monotone: true then false; true at low)."""
    high = LONGEST_CALL_SECONDS
    if holds(high):
        return high
    while low < high - 1:
        middle = (low + high) // 2
        if holds(middle):
            low = middle
        else:
            high = middle
    return low


def reason_to_end(limits: Limits, *, available_usd: Decimal | None, spend_usd: Decimal) -> Refusal | None:
    """Why an enforcing customer's calls in progress must end now, if they must: the balance less
    the running costs has reached 0, or the month's spend with them has reached the cap."""
    if not limits.enforce:
        return None
    if available_usd is not None and available_usd <= 0:
        return Refusal.BALANCE_EXHAUSTED
    cap = limits.monthly_spend_cap_usd
    if cap is not None and spend_usd >= cap:
        return Refusal.SPEND_CAP_REACHED
    return None
