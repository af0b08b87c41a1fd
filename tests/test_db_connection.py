"""db/connection.py under real PostgreSQL faults: a backend ended under a pooled connection, a backend
ended while its connection goes back to the pool. Each is a DatabaseUnavailableError or nothing, never
a driver error, and the pool serves a working connection next, to the same task."""

from __future__ import annotations

import asyncio
import os
from contextlib import suppress

import asyncpg
import pytest

from callmeter.db.connection import Database
from callmeter.errors import DatabaseUnavailableError
from tests.conftest import ADMIN_URL, require_backend
from tests.factories import create_pg_database, drop_pg_database

# Put first on a session's search_path, it stands in for the one asyncpg's reset query calls when a
# connection goes back to the pool, and ends the session's backend there.
SELF_TERMINATING_UNLOCK = """
CREATE FUNCTION public.pg_advisory_unlock_all() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
END $$
"""


@pytest.fixture
async def pg():
    """A PostgreSQL database of the test's own, a one-connection pool on it, and an admin session."""
    require_backend("postgresql")
    url = await asyncio.to_thread(create_pg_database, ADMIN_URL, f"callmeter_connection_{os.getpid()}")
    db = Database(url, min_size=1, max_size=1)
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await db.connect()
        yield db, admin
        # A connection the pool still counts as held would make closing it wait for ever.
        await asyncio.wait_for(db.disconnect(), timeout=10)
    finally:
        await admin.close()
        await asyncio.to_thread(drop_pg_database, ADMIN_URL, url)


@pytest.mark.parametrize("use", ["transaction", "connection"])
async def test_a_backend_ended_under_a_pooled_connection_is_unavailable_then_replaced(pg, use):
    """The server's FATAL reaches the idle connection a loop turn or more before the socket's end, so
    the next BEGIN or query meets asyncpg's `cannot switch to state 15; another operation (2) is in
    progress`; or the end comes first (`connection was closed`). Either is DatabaseUnavailableError."""
    db, admin = pg
    opened = getattr(db, use)
    for turns in range(10):
        async with db.connection() as conn:
            pid = await conn.fetch_val("SELECT pg_backend_pid()")
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(turns):
            await asyncio.sleep(0)
        with suppress(DatabaseUnavailableError):
            async with opened() as conn:
                await conn.fetch_val("SELECT 1")
        async with opened() as conn:  # the same task: not left holding the broken connection
            assert await conn.fetch_val("SELECT 1") == 1


async def test_a_connection_goes_back_to_the_pool_without_a_round_trip(pg):
    """asyncpg resets a connection on its way back to the pool unless told not to (its reset query
    calls `pg_advisory_unlock_all()`, here a function that ends the backend). The service's pooled
    connections hold no session state, so it skips the reset: the backend lives on, the committed
    row stands, and the next transaction runs on the same backend (a session setting made here
    survives too, which is why the service never makes one on a pooled connection)."""
    db, _admin = pg
    async with db.connection() as conn:
        await conn.execute("CREATE TABLE kept (n integer)")
        await conn.execute(SELF_TERMINATING_UNLOCK)
        pid = await conn.fetch_val("SELECT pg_backend_pid()")
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO kept VALUES (1)")
        await conn.execute("SET search_path = public, pg_catalog")  # the function first, were it called
    async with db.transaction() as conn:
        assert await conn.fetch_val("SELECT count(*) FROM kept") == 1
        assert await conn.fetch_val("SELECT pg_backend_pid()") == pid
        assert await conn.fetch_val("SHOW search_path") == "public, pg_catalog"


async def test_a_task_cancelled_between_prepare_and_execute_leaves_no_transaction_open(pg, monkeypatch):
    """graphql-core cancels a failed field's siblings. asyncpg prepares a new statement with Parse,
    Describe and Flush (no Sync), then binds it; a task cancelled in the loop turn between the two
    left the backend in an implicit transaction holding its locks (a TRUNCATE or a migration waited
    behind it) until the connection's next use, and asyncpg, having no operation in flight, sent
    nothing. The connection of a cancelled block now gets asyncpg's full reset on its way back.
    The cancel lands exactly there: as the prepared statement comes back to the task."""
    db, admin = pg
    async with db.connection() as conn:
        await conn.execute("CREATE TABLE watched (n integer)")
        pid = await conn.fetch_val("SELECT pg_backend_pid()")
    prepare = asyncpg.connection.Connection._get_statement

    async def prepared_then_cancelled(self, *args, **kwargs):
        await prepare(self, *args, **kwargs)
        raise asyncio.CancelledError

    monkeypatch.setattr(asyncpg.connection.Connection, "_get_statement", prepared_then_cancelled)
    with pytest.raises(asyncio.CancelledError):
        async with db.connection() as conn:
            await conn.fetch_all("SELECT n FROM watched WHERE n > :n", {"n": 0})
    monkeypatch.undo()
    held = await admin.fetchrow(
        "SELECT state, xact_start IS NOT NULL AS in_transaction FROM pg_stat_activity WHERE pid = $1", pid
    )
    assert not held["in_transaction"], dict(held)
    async with db.transaction() as conn:  # and the connection serves on
        assert await conn.fetch_val("SELECT count(*) FROM watched") == 0
