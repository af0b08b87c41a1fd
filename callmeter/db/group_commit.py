"""Group commit: callbacks that arrive together are recorded in one transaction.

Each callback waits in a queue; one batch at a time takes everything queued (up to `MAX_BATCH`)
and records it with `recording.record_in`, in arrival order, in ONE transaction: one BEGIN, one
COMMIT (one fsync) and one NOTIFY for the lot, and on PostgreSQL what the batch locks, reads and
stores done by one statement each (db/batch.py, db/batch_advances.py). Every
callback is answered only after the commit that stored it. Nothing waits for a batch to fill: a
callback that finds the queue idle is committed at once, alone; under load the batches grow by
themselves while the one before is in the database.

A batch that fails as a whole is rolled back and its callbacks are recorded again one by one, each
in its own transaction (`record_status_callback`), so a failing event fails only itself. That also
covers the rare rollbacks a batch cannot avoid: a deadlock with another process's transaction
(batches lock calls, then customers' billing, each in one order, but a one-by-one transaction
takes them as it goes), or, on SQLite, where events are stored one at a time, an event that turns
out to duplicate an unattributed one after its call was created. An unreachable
database fails every callback of the batch at once (each gets its 503), without the retries.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg

from callmeter.billing.plans import Plan
from callmeter.call_lifecycle import StatusCallback
from callmeter.db.batch import Queued, lock_batch, owner_number
from callmeter.db.batch_advances import record_simple_advances
from callmeter.db.bus import LiveBus
from callmeter.db.connection import Connection, Database
from callmeter.db.recording import (
    Recorded,
    RecordOutcome,
    record_in,
    record_status_callback,
)
from callmeter.db.scope import recording_batch
from callmeter.errors import DatabaseUnavailableError
from callmeter.metrics import CALLBACK_BATCHES, CALLBACKS_PER_BATCH
from callmeter.months import Calendar

log = logging.getLogger("callmeter.recording")

MAX_BATCH = 64  # bounds how long one batch holds its locks


def _future() -> asyncio.Future[RecordOutcome]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Callback(Queued):
    default_plan: Plan
    answer: asyncio.Future[RecordOutcome] = field(default_factory=_future)

    def resolve(self, outcome: RecordOutcome) -> None:
        if not self.answer.done():
            self.answer.set_result(outcome)

    def fail(self, exc: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class _Lane:
    """A queue and the one batch of it in the database at a time."""

    def __init__(self) -> None:
        self.queue: list[_Callback] = []
        self.committer: asyncio.Task[None] | None = None


class GroupCommit:
    """`lanes` (`CALLBACK_LANES`): batches in the database at once (on SQLite, whose writes take
    turns, one). One is the most efficient when the database is near (bench/README.md: the same
    throughput as four on two cores, with batches four times larger and a quarter less CPU an
    event); more pay off when each round trip is long (a database across a network). A lane
    is chosen by the agent's number of the call (the same in each of its callbacks), so a call's
    events take the same lane, and so do one agent's calls: one customer's completions then share
    a batch and its one billing lock, rather than lanes queueing for that lock batch after batch."""

    def __init__(self, db: Database, bus: LiveBus | None, *, lanes: int = 1) -> None:
        self.db = db
        self.bus = bus
        self._lanes = [_Lane() for _ in range(1 if db.is_sqlite else lanes)]
        # committed batches, the callbacks in them, and batches retried one by one (also in /metrics)
        self.batches, self.batched, self.retried = 0, 0, 0

    async def record(
        self,
        *,
        event: StatusCallback,
        form: Mapping[str, str],
        agent_id: int | None,
        default_plan: Plan,
        default_calendar: Calendar,
        authorization_id: str | None = None,
    ) -> RecordOutcome:
        """Record one callback; returns once the transaction that stored it has committed."""
        callback = _Callback(event, form, agent_id, authorization_id, default_calendar, default_plan)
        key = (owner_number(event) or event.call_sid).encode()
        lane = self._lanes[zlib.crc32(key) % len(self._lanes)]  # the same in every process
        lane.queue.append(callback)
        if lane.committer is None:
            lane.committer = asyncio.create_task(self._commit_queued(lane), name="callmeter-group-commit")
        return await callback.answer

    async def _commit_queued(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                batch, lane.queue = lane.queue[:MAX_BATCH], lane.queue[MAX_BATCH:]
                try:
                    await self._commit(batch)
                except BaseException as exc:  # cancelled (the loop is closing): no one is left waiting
                    for callback in batch + lane.queue:
                        callback.fail(exc)
                    lane.queue = []
                    raise
        finally:
            lane.committer = None

    async def _commit(self, batch: list[_Callback]) -> None:
        if len(batch) == 1 and self.db.is_sqlite:  # the same work either way there
            await self._one_by_one(batch)
            return
        try:
            async with self.db.transaction() as conn:
                recorded = await self._record_batch(conn, batch)
                if self.bus is not None:
                    await self.bus.announce_many(conn, [r.announced for r in recorded if r.announced])
        except DatabaseUnavailableError as exc:
            if not isinstance(exc.__cause__, asyncpg.TransactionRollbackError):
                for callback in batch:  # unreachable: each gets its 503 now, not after retries
                    callback.fail(exc)
                return
            await self._retry(batch, exc)
            return
        except Exception as exc:  # any other failure: each callback alone, in its own transaction
            await self._retry(batch, exc)
            return
        self.batches, self.batched = self.batches + 1, self.batched + len(batch)
        CALLBACK_BATCHES.labels("committed").inc()
        CALLBACKS_PER_BATCH.observe(len(batch))
        for callback, result in zip(batch, recorded, strict=True):
            if self.bus is not None and result.announced is not None:
                self.bus.committed(result.announced)
            callback.resolve(result.outcome)

    async def _record_batch(self, conn: Connection, batch: list[_Callback]) -> list[Recorded]:
        with recording_batch():
            # SQLite: each event asks as it goes (its write transaction has the database to itself)
            locks, done = None, {}
            if not self.db.is_sqlite:
                locks = await lock_batch(conn, batch)
                done = await record_simple_advances(conn, batch, locks)
            for index, callback in enumerate(batch):
                if index not in done:
                    done[index] = await record_in(
                        conn,
                        event=callback.event,
                        form=callback.form,
                        agent_id=callback.agent_id,
                        default_plan=callback.default_plan,
                        default_calendar=callback.default_calendar,
                        authorization_id=callback.authorization_id,
                        batch=locks,
                    )
            return [done[index] for index in range(len(batch))]

    async def _retry(self, batch: list[_Callback], exc: Exception) -> None:
        log.warning("a batch of %d callbacks rolled back (%r); recording each alone", len(batch), exc)
        self.retried += 1
        CALLBACK_BATCHES.labels("retried").inc()
        await self._one_by_one(batch)

    async def _one_by_one(self, batch: list[_Callback]) -> None:
        for callback in batch:
            try:
                outcome = await record_status_callback(
                    self.db,
                    event=callback.event,
                    form=callback.form,
                    agent_id=callback.agent_id,
                    default_plan=callback.default_plan,
                    default_calendar=callback.default_calendar,
                    bus=self.bus,
                    authorization_id=callback.authorization_id,
                )
            except Exception as exc:  # it is this callback's answer
                callback.fail(exc)
            else:
                callback.resolve(outcome)
