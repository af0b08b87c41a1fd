"""Bring the schema up to date with Alembic (idempotent), on PostgreSQL or SQLite.

Alembic is imported only when migrations run: `serve` on PostgreSQL starts without it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from callmeter.db.connection import Connection, connect_failure
from callmeter.settings import sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def async_url(database_url: str) -> str:
    """The SQLAlchemy asyncio URL for a `DATABASE_URL`."""
    if database_url.startswith("sqlite"):
        return "sqlite+aiosqlite:" + database_url.split(":", 1)[1]
    return "postgresql+asyncpg:" + database_url.split(":", 1)[1]


def head_revision() -> str:
    """The newest migration's revision, without importing Alembic's machinery: revisions are
    numbered in sequence and each file is named after its own (`0005_reconciled_at.py`)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


async def schema_revision(conn: Connection) -> str | None:
    """The migration the database is at, from Alembic's own table."""
    return await conn.fetch_val("SELECT version_num FROM alembic_version")  # type: ignore[no-any-return]


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def _upgrade(database_url: str) -> None:
    db_file = sqlite_path(database_url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    try:
        command.upgrade(alembic_config(database_url), "head")
    except Exception as exc:
        failure = connect_failure(database_url, exc)
        if failure is None:
            raise
        raise failure from exc
    if db_file is not None:
        import sqlite3

        # WAL lets the dashboard read while a callback writes; it is a property of the file.
        with sqlite3.connect(db_file) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def migrate(database_url: str) -> None:
    """Run the migrations; safe to call from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _upgrade(database_url)
        return
    # env.py starts its own event loop, which cannot nest: run it on a thread.
    import threading

    failure: list[BaseException] = []

    def run() -> None:
        try:
            _upgrade(database_url)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
