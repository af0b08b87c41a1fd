"""Shared fixtures: a fresh PostgreSQL database per run, a SQLite file, and live `callmeter serve`s.

Every test that uses `server` runs once per backend (SQLite and PostgreSQL) against a real service
process over real HTTP, and starts from empty tables. PostgreSQL comes from `TEST_DATABASE_URL`
(default: the local server, user postgres); with `CI=true` it must be reachable, elsewhere the
PostgreSQL variants skip with the reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.factories import (
    POOLER_BASE,
    ServerHandle,
    clear_tables,
    create_pg_database,
    direct,
    drop_pg_database,
    pooled,
    start_server,
)
from tests.private_postgres import PrivatePostgres

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
# `pgbouncer`: PostgreSQL through PgBouncer in transaction mode (CALLMETER_TEST_POOLER_URL, default
# 127.0.0.1:6432; `.ci/pgbouncer` starts one), with DATABASE_DIRECT_URL for what needs a session.
BACKENDS = ["sqlite", "postgresql", "pgbouncer"]

_pg_problem: str | None = None
_pooler_problem: str | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _pg_problem
    import asyncio

    async def probe() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to reach PostgreSQL
        _pg_problem = f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}"
        if IN_CI:
            raise pytest.UsageError(f"{_pg_problem} (CI=true: PostgreSQL tests must run)") from exc

    async def probe_pooler() -> None:
        conn = await asyncpg.connect(pooled(ADMIN_URL), timeout=5, statement_cache_size=0)
        await conn.close()

    try:
        asyncio.run(probe_pooler())
    except Exception as exc:
        _pooler_problem = f"no PgBouncer at {POOLER_BASE} (start one with .ci/pgbouncer): {exc}"
        if IN_CI:
            raise pytest.UsageError(f"{_pooler_problem} (CI=true: the pooler tests must run)") from exc


def require_backend(name: str) -> None:
    if name in ("postgresql", "pgbouncer") and _pg_problem:
        pytest.skip(_pg_problem)
    if name == "pgbouncer" and _pooler_problem:
        pytest.skip(_pooler_problem)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("callmeter")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, session_dir: Path) -> Iterator[str]:
    """A migrated, empty database of each backend, for the whole run."""
    require_backend(request.param)
    from callmeter.db.migrate import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{session_dir / 'callmeter.db'}"
        migrate(url)
        yield url
        return
    url = create_pg_database(ADMIN_URL, f"callmeter_test_{os.getpid()}_{secrets.token_hex(3)}")
    migrate(url)
    yield pooled(url) if request.param == "pgbouncer" else url
    drop_pg_database(ADMIN_URL, url)


@pytest.fixture
async def clean_database(database_url: str) -> str:
    """The backend's database with every table emptied before the test."""
    await clear_tables(database_url)
    return database_url


@pytest.fixture(scope="session")
def live_server(database_url: str, session_dir: Path) -> Iterator[ServerHandle]:
    handle = start_server(database_url, session_dir)
    yield handle
    handle.stop()


@pytest.fixture
async def server(live_server: ServerHandle) -> ServerHandle:
    """A running `callmeter serve` on an empty database."""
    await clear_tables(live_server.database_url)
    return live_server


@pytest.fixture
async def client(server: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this module's own, free to stop and restart (see private_postgres.py)."""
    require_backend("postgresql")
    cluster = PrivatePostgres()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def private_database(database_url, tmp_path):
    """A migrated database of the backend that no other `serve` uses (the session's server would
    otherwise take its turn at background work: hang-ups, webhook deliveries)."""
    from callmeter.db.migrate import migrate

    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'own.db'}"
        migrate(url)
        yield url
        return
    url = create_pg_database(ADMIN_URL, f"callmeter_enforce_{secrets.token_hex(4)}")
    migrate(url)
    yield pooled(url) if direct(database_url) != database_url else url
    drop_pg_database(ADMIN_URL, url)
