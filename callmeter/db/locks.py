"""Locks that serialise what must not interleave: one user's rating, one periodic job per deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from callmeter.db.connection import Connection, Database
from callmeter.db.prepared import Prepared
from callmeter.db.scope import batch_scope


def is_postgres(conn: Connection) -> bool:
    return conn._backend._dialect.name == "postgresql"  # type: ignore[attr-defined]


_LOCK_USER_BILLING = Prepared(text("SELECT pg_advisory_xact_lock(:key)"))


async def lock_user_billing(conn: Connection, *, user_id: int) -> None:
    """Serialise, until the transaction ends, everything that rates one user's calls.

    A completed call and a plan change for the same user must not interleave, or a call could be
    rated by a plan that is being replaced. PostgreSQL: a transaction-scoped advisory lock keyed
    by the user; SQLite: write transactions are already serialised.
    """
    scope = batch_scope()
    if scope is not None and user_id in scope.billing_locks:
        return
    if is_postgres(conn):
        await _LOCK_USER_BILLING.execute(conn, key=user_id)
    if scope is not None:
        scope.billing_locks.add(user_id)


_LOCK_USERS_BILLING = Prepared(
    # unnest gives the keys in the array's order, and the locks are taken as the rows come
    text("SELECT pg_advisory_xact_lock(key) FROM unnest(CAST(:keys AS bigint[])) AS key")
)


async def lock_users_billing(conn: Connection, *, user_ids: list[int]) -> None:
    """`lock_user_billing` for several users, in one statement, in the order of their ids."""
    scope = batch_scope()
    wanted = sorted(set(user_ids) - (scope.billing_locks if scope else set()))
    if is_postgres(conn) and wanted:
        await _LOCK_USERS_BILLING.execute(conn, keys=wanted)
    if scope is not None:
        scope.billing_locks.update(wanted)


@asynccontextmanager
async def job_lock(db: Database, *, name: str) -> AsyncIterator[bool]:
    """Whether this process may run the named periodic job now (one process of a deployment at a time).

    PostgreSQL: a session advisory lock, on the process's one connection for session locks (to the
    direct URL: a transaction pooler would hand the lock's session to others), released after the
    job or when that connection ends. SQLite: one process by design, so always. Not a transaction:
    the job's own writes run in theirs.
    """
    if db.is_sqlite:
        yield True
        return
    key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big", signed=True)
    session = await db.lock_session()
    async with session.turn:
        locked = bool(await session.conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
    try:
        yield locked
    finally:
        if locked and not session.conn.is_closed():
            async with session.turn:
                await session.conn.execute("SELECT pg_advisory_unlock($1)", key)
