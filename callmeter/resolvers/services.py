"""What every resolver is given: the database, the settings, the live bus and the callback
recorder of this process.

`serve` opens them once for its lifetime; each CLI command opens them for its own run. Opening the
embedded database migrates it first, so a fresh machine just works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from callmeter.billing.plans import Plan
from callmeter.db import migrate
from callmeter.db.bus import LiveBus
from callmeter.db.connection import Database
from callmeter.db.group_commit import GroupCommit
from callmeter.errors import ConfigError
from callmeter.settings import Settings


@dataclass(frozen=True)
class Services:
    db: Database
    settings: Settings
    bus: LiveBus
    recorder: GroupCommit  # callbacks are recorded through it: many in one transaction under load

    @property
    def default_plan(self) -> Plan:
        return self.settings.default_plan


def migrate_database(settings: Settings) -> None:
    migrate.migrate(settings.direct_url)  # DDL and Alembic's session need a direct connection


@asynccontextmanager
async def open_services(
    settings: Settings, *, migrate_first: bool | None = None, pool_size: tuple[int, int] = (1, 2)
) -> AsyncIterator[Services]:
    """Connected services; `migrate_first` defaults to migrating the embedded database only."""
    if settings.is_sqlite if migrate_first is None else migrate_first:
        migrate_database(settings)
    db = Database(
        settings.database_url,
        min_size=pool_size[0],
        max_size=pool_size[1],
        direct_url=settings.database_direct_url,
    )
    await db.connect()
    try:
        bus = LiveBus(db)
        yield Services(db, settings, bus, GroupCommit(db, bus, lanes=settings.callback_lanes))
    finally:
        await db.disconnect()


async def check_schema(services: Services) -> None:
    """Refuse, in one line, a database that is not at this version's migration (say, new code
    deployed without running `callmeter migrate`)."""
    async with services.db.connection() as conn:
        current = await migrate.schema_revision(conn)
    needed = migrate.head_revision()
    if current != needed:
        raise ConfigError(
            f"the database schema is at revision {current}, this callmeter needs {needed}: "
            "run `callmeter migrate`"
        )
