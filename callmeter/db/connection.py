"""The database handle: `databases` over asyncpg (PostgreSQL) or aiosqlite (SQLite).

Every use of `databases` stays in `db/` so it can be swapped for SQLAlchemy's own asyncio Core in one
place. The caller owns the transaction: `async with db.transaction() as conn:` then pass `conn` to the
query functions. SQLite allows one writer at a time, so on SQLite write transactions are serialised
in-process (the embedded default is one process by design); PostgreSQL row locks do that job there.

A database fault is `DatabaseUnavailableError` (a 503) wherever it strikes: opening a connection, a
statement, BEGIN, COMMIT, ROLLBACK. A PostgreSQL connection that failed is terminated, not pooled, so
the next request opens a fresh one; one that fails on its way back to the pool, its work done, is
discarded the same way and the block's result stands (a committed event answers 2xx).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
import databases
from sqlalchemy import make_url

from callmeter.errors import ConfigError, DatabaseUnavailableError, unreachable_reason
from callmeter.settings import sqlite_path

Connection = databases.core.Connection

log = logging.getLogger("callmeter.db")

# What opening a connection raises when the server cannot be reached or turns the connection down.
CONNECT_FAILURES = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
)

# What a lost or refused database connection raises, per driver, at any point. asyncpg's client-side
# errors belong here: the FATAL of a backend terminated while its connection sat idle in the pool puts
# asyncpg's protocol into a state that waits for a ReadyForQuery that never comes, so until the
# socket's end arrives the next BEGIN or query fails with `InternalClientError: cannot switch to
# state 15; another operation (2) is in progress`; after it, `InterfaceError: connection is closed`.
UNAVAILABLE = (
    *CONNECT_FAILURES,
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,  # the server ended the session, or statement_timeout
    asyncpg.ConnectionDoesNotExistError,
    sqlite3.OperationalError,
)


def connect_failure(url: str, exc: BaseException) -> DatabaseUnavailableError | None:
    """A failed connection attempt (the driver's error, or SQLAlchemy's around it) as one line naming
    the server, e.g. `database "x" does not exist on 127.0.0.1:5432`; None for any other error."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, CONNECT_FAILURES):
        cause = cause.__cause__
    if cause is None:
        return None
    if url.startswith("sqlite"):
        where = str(sqlite_path(url))
    else:
        parsed = make_url(url)
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if isinstance(cause, asyncpg.PostgresError):
        return DatabaseUnavailableError(f"{cause} on {where}")
    return DatabaseUnavailableError(f"cannot reach the database at {where}: {unreachable_reason(cause)}")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """asyncpg's pool resets a connection on its way back (`RESET ALL; UNLISTEN *; CLOSE ALL;
    pg_advisory_unlock_all()`), a round trip on every release. Pooled connections here hold no
    session state to reset: LISTEN and session advisory locks have connections of their own
    (`bus`, `lock_session`), no setting is ever SET on them, and no cursor outlives its
    transaction. An open transaction is still rolled back by the pool before this runs, and a
    connection whose block was cancelled gets the full reset first (`Database._reset_after_cancel`)."""


@dataclass
class LockSession:
    conn: asyncpg.Connection
    turn: asyncio.Lock  # one statement at a time on the connection


class Database:
    """`direct_url`: set when `url` goes through a transaction pooler (PgBouncer and the like): the
    pool then uses no server-side prepared statements and no session settings, and what needs a
    session of its own (LISTEN, session advisory locks) connects to `direct_url` (`self.direct_url`)."""

    def __init__(
        self, url: str, *, min_size: int = 2, max_size: int = 10, direct_url: str | None = None
    ) -> None:
        self.url = url
        self.direct_url = direct_url or url
        self.pooled = direct_url is not None
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {}
        if self.is_sqlite:
            options["timeout"] = 15  # sqlite3's busy timeout, seconds
        else:
            # A statement may run 15 s on the server; the client gives up at 30 s either way.
            options.update(min_size=min_size, max_size=max_size, command_timeout=30, reset=_keep_session)
            if self.pooled:
                # A transaction pooler hands each transaction to any server connection: prepared
                # statements would not be there, and it refuses session settings at start-up (set
                # statement_timeout on the role instead: README).
                options["statement_cache_size"] = 0
            else:
                options["server_settings"] = {"statement_timeout": "15000"}
        self._db = databases.Database(url, **options)
        self._write_lock = asyncio.Lock()
        self._lock_session: LockSession | None = None

    async def lock_session(self) -> LockSession:
        """The process's connection for session advisory locks (`locks.job_lock`), to the direct
        URL, opened on first use and again after it was lost."""
        if self._lock_session is None or self._lock_session.conn.is_closed():
            self._lock_session = LockSession(
                await asyncpg.connect(self.direct_url, timeout=10), asyncio.Lock()
            )
        return self._lock_session

    async def connect(self) -> None:
        try:
            await self._db.connect()
        except UNAVAILABLE as exc:
            failure = connect_failure(self.url, exc)
            raise failure or DatabaseUnavailableError(f"cannot reach the database: {exc}") from exc

    async def disconnect(self) -> None:
        if self._lock_session is not None and not self._lock_session.conn.is_closed():
            with suppress(Exception):
                await self._lock_session.conn.close(timeout=5)
        await self._db.disconnect()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self._unavailable_as_error() as opened, self._held() as conn:
            opened.append(True)
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A write transaction on a connection of its own; commits when the block exits cleanly."""
        async with self._unavailable_as_error() as opened:
            if self.is_sqlite:
                async with self._write_lock, self._held() as conn:
                    opened.append(True)
                    # IMMEDIATE takes the write lock now, waiting out another process's writer for
                    # the busy timeout; a deferred BEGIN would fail at once ("database is locked")
                    # when its first write found another process had written since it began.
                    await conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        with suppress(Exception):  # a lost connection keeps no transaction
                            await conn.execute("ROLLBACK")
                        raise
                    await conn.execute("COMMIT")
            else:
                async with self._held() as conn:
                    opened.append(True)
                    transaction = conn.raw_connection.transaction()
                    await transaction.start()
                    try:
                        yield conn
                    except BaseException:
                        try:
                            await transaction.rollback()
                        except UNAVAILABLE:  # a lost connection keeps no transaction
                            self._discard(conn)
                        raise
                    await transaction.commit()

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[Connection]:
        """This task's connection, taken from the pool for the block and given back after it; on
        PostgreSQL one that failed is discarded instead (SQLite closes its connection either way)."""
        conn = self._db.connection()
        await conn.__aenter__()
        try:
            yield conn
        except BaseException as exc:
            if isinstance(exc, UNAVAILABLE) and not self.is_sqlite:
                self._discard(conn)
            else:
                if isinstance(exc, asyncio.CancelledError) and not self.is_sqlite:
                    await self._reset_after_cancel(conn)
                await self._release(conn)
            raise
        await self._release(conn)

    async def _reset_after_cancel(self, conn: Connection) -> None:
        """A task cancelled between asyncpg's prepare (Parse, Describe, Flush: no Sync) and its
        execute (graphql-core cancels a failed field's siblings) leaves the backend in an implicit
        transaction holding its locks until the connection's next use, and asyncpg, with nothing in
        flight, sends nothing. asyncpg's full reset (a simple query) ends it; a connection it fails
        on is discarded. Only cancelled blocks pay this round trip (`_keep_session`)."""
        if conn._connection._connection is None:
            return
        try:
            await conn.raw_connection.reset(timeout=5)
        except Exception as exc:
            log.warning("discarded a database connection that failed its reset after a cancel: %r", exc)
            self._discard(conn)

    async def _release(self, conn: Connection) -> None:
        """Back to the pool. The block's work is done (committed, or only read), so a connection that
        fails now (asyncpg rolls back a transaction left open on the way) is discarded and the block's
        result stands: Twilio is not told to resend an event that is stored."""
        if conn._connection._connection is None:  # discarded already
            return
        try:
            await conn.__aexit__()
        except Exception as exc:  # whatever the reset met, the connection is not pooled again
            log.warning("discarded a database connection that failed on its way back to the pool: %r", exc)
            self._discard(conn)

    def _discard(self, conn: Connection) -> None:
        """Terminate a PostgreSQL connection that failed, and forget it: the pool opens a fresh one in
        its place, and this task's next `connection()` does not find the broken one (`databases`
        keeps one per task, which a failed BEGIN or release would otherwise leave half-held)."""
        held = conn._connection
        proxy = held._connection
        # Not already detached by asyncpg's own cleanup (SQLite has no pool: nothing to terminate).
        if not self.is_sqlite and proxy is not None and proxy._con is not None:
            proxy.terminate()  # asyncpg gives the pool's slot back; it reconnects on the next acquire
        held._connection = None
        conn._connection_counter = 0
        conn._transaction_stack.clear()
        if self._db._connection is conn:
            self._db._connection = None

    @asynccontextmanager
    async def _unavailable_as_error(self) -> AsyncIterator[list[bool]]:
        """Lost connections, and any refusal while opening one (the server starting or shutting
        down, a database not accepting connections, ...), become DatabaseUnavailableError."""
        opened: list[bool] = []
        try:
            yield opened
        except UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"database unavailable: {exc}") from exc
        except asyncpg.TransactionRollbackError as exc:  # a deadlock or serialization failure: retry
            raise DatabaseUnavailableError(f"database busy, try again: {exc}") from exc
        except asyncpg.UndefinedTableError:
            raise ConfigError("the database has no callmeter tables: run `callmeter migrate`") from None
        except asyncpg.PostgresError as exc:
            if opened:
                raise
            raise DatabaseUnavailableError(f"database unavailable: {exc}") from exc

    def pool_stats(self) -> dict[str, int]:
        pool = getattr(getattr(self._db, "_backend", None), "_pool", None)
        if pool is None or not hasattr(pool, "get_size"):
            return {}
        return {"open": pool.get_size(), "idle": pool.get_idle_size(), "max": pool.get_max_size()}

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetch_val("SELECT 1")
