"""What one group-commit transaction remembers while it records its batch (db/group_commit.py).

All of a batch's callbacks are recorded in one transaction, as if at one moment, so what that
transaction has done or read once holds for every callback after: the billing locks it has taken
(taking one again is free), the endpoints subscribed to each kind of event, and which customers
have usage alerts at all. Kept in a context
variable for the batch's block, so the paths a callback takes (rating, the outbox) ask it without
each function passing it on; outside a batch there is none and every call asks the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchScope:
    billing_locks: set[int] = field(default_factory=set)  # users whose billing lock it holds
    subscribed: dict[str, list[Any]] = field(default_factory=dict)  # endpoint rows by LIKE pattern
    # users the batch looked up usage alerts for at its start, and those of them that have any
    alerts_looked_up: set[int] = field(default_factory=set)
    with_alerts: set[int] = field(default_factory=set)

    def has_no_alerts(self, user_id: int) -> bool:
        return user_id in self.alerts_looked_up and user_id not in self.with_alerts


_SCOPE: ContextVar[BatchScope | None] = ContextVar("callmeter_batch_scope", default=None)


def batch_scope() -> BatchScope | None:
    """The scope of the batch being recorded in this task, if any."""
    return _SCOPE.get()


@contextmanager
def recording_batch() -> Iterator[BatchScope]:
    """For the block, inside ONE transaction (the locks last until it ends; the block must not
    outlive it)."""
    scope = BatchScope()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
