"""The live-event bus: committed call changes fanned out to this process's subscribers.

PostgreSQL: the recording transaction NOTIFYs (delivered at commit only, so a rolled-back change is
never announced); each process keeps ONE dedicated LISTEN connection (a pooled connection would
lose its listener when released) shared by all its subscribers. If that connection drops, the
process reconnects with backoff, catches up from `webhook_events` (not from memory) and tells every
subscriber to resynchronise, so nothing is missed silently. SQLite: one process by design, so the
bus is in-process and changes are published right after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import asyncpg

from callmeter.db import live
from callmeter.db.connection import Database
from callmeter.db.live import LiveEvent

log = logging.getLogger("callmeter.bus")

T = TypeVar("T")
RESYNC = None  # put in every inbox after a reconnect: "re-read everything"
INBOX_SIZE = 1000
HEALTH_CHECK_SECONDS = 5.0


class Inbox:
    """One subscriber's queue of changes (or RESYNC)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(INBOX_SIZE)

    def put(self, item: LiveEvent | None) -> None:
        if self._queue.full():
            # A subscriber this far behind gets one resync instead of an unbounded backlog.
            while not self._queue.empty():
                self._queue.get_nowait()
            item = RESYNC
        self._queue.put_nowait(item)

    async def get(self) -> LiveEvent | None:
        return await self._queue.get()

    async def burst(self) -> list[LiveEvent | None]:
        """Wait for a change, then take every other change already queued with it."""
        items = [await self._queue.get()]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items


class LiveBus:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._inboxes: dict[int, set[Inbox]] = defaultdict(set)
        self._versions: dict[int, int] = defaultdict(int)
        self._shared: dict[tuple[int, str], tuple[int, asyncio.Future[Any]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._last_event_id = 0
        self.connected = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return sum(len(inboxes) for inboxes in self._inboxes.values())

    @asynccontextmanager
    async def subscribe(self, user_id: int) -> AsyncIterator[Inbox]:
        inbox = Inbox()
        self._inboxes[user_id].add(inbox)
        try:
            yield inbox
        finally:
            self._inboxes[user_id].discard(inbox)
            if not self._inboxes[user_id]:
                del self._inboxes[user_id]
                for key in [key for key in self._shared if key[0] == user_id]:
                    del self._shared[key]

    def dispatch(self, event: LiveEvent) -> None:
        self._last_event_id = max(self._last_event_id, event.event_id)
        self._versions[event.user_id] += 1
        for inbox in list(self._inboxes.get(event.user_id, ())):
            inbox.put(event)

    def resync_all(self) -> None:
        for user_id in list(self._versions):
            self._versions[user_id] += 1
        for inboxes in list(self._inboxes.values()):
            for inbox in list(inboxes):
                inbox.put(RESYNC)

    async def shared_read(self, user_id: int, name: str, read: Callable[[], Awaitable[T]]) -> T:
        """One read per user and change, shared by every subscriber of that user in this process.

        A thousand dashboards of one customer cost one query per change, not a thousand.
        """
        version = self._versions[user_id]
        cached = self._shared.get((user_id, name))
        if cached is None or cached[0] != version or (cached[1].done() and cached[1].exception()):
            future: asyncio.Future[Any] = asyncio.ensure_future(read())
            self._shared[(user_id, name)] = (version, future)
            cached = (version, future)
        if not self._inboxes.get(user_id):
            self._shared.pop((user_id, name), None)
        if cached[1].done():
            return cached[1].result()  # the common case, cheaply: a thousand subscribers ask at once
        return await asyncio.shield(cached[1])

    async def announce(self, conn: object, event: LiveEvent) -> None:
        """Inside the recording transaction: NOTIFY on PostgreSQL (SQLite publishes after commit)."""
        if not self.db.is_sqlite:
            await live.notify(conn, event)  # type: ignore[arg-type]

    async def announce_many(self, conn: object, events: list[LiveEvent]) -> None:
        """`announce` for several changes, in one statement."""
        if not self.db.is_sqlite:
            await live.notify_many(conn, events)  # type: ignore[arg-type]

    def committed(self, event: LiveEvent) -> None:
        """After the recording transaction committed: the in-process bus's publication."""
        if self.db.is_sqlite:
            self.dispatch(event)

    async def start(self) -> None:
        if self.db.is_sqlite:
            self.connected.set()
            return
        async with self.db.connection() as conn:
            self._last_event_id = await live.last_event_id(conn)
        self._listener = asyncio.create_task(self._listen_forever(), name="callmeter-live-listener")
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=10)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener

    async def _listen_forever(self) -> None:
        delay, first = 0.1, True
        while True:
            try:
                await self._listen_once(catch_up=not first)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the listening connection: reconnect
                log.warning("live listener lost its connection (%s); reconnecting in %.1fs", exc, delay)
            self.connected.clear()
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _listen_once(self, *, catch_up: bool) -> None:
        conn = await asyncpg.connect(self.db.direct_url, timeout=10)  # LISTEN needs a session
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(live.CHANNEL, self._on_notification)
            if catch_up:
                await self._catch_up()
            self.connected.set()
            log.info("live listener connected")
            while not lost.is_set():
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=HEALTH_CHECK_SECONDS)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=HEALTH_CHECK_SECONDS)
            raise ConnectionError("listening connection closed")
        finally:
            with suppress(Exception):
                await conn.close(timeout=1)

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = LiveEvent.from_payload(payload)
        except (ValueError, TypeError, KeyError):
            log.error("ignored a malformed live notification")
            return
        self.dispatch(event)

    async def _catch_up(self) -> None:
        """Replay, from the table, what was committed while no one was listening; then resync."""
        async with self.db.connection() as conn:
            missed = await live.changes_since(conn, event_id=self._last_event_id)
        for event in missed:
            self.dispatch(event)
        log.info("live listener caught up on %d changes", len(missed))
        self.resync_all()
