"""What the CLI's database commands do, as plain async functions the tests call too."""

from __future__ import annotations

from collections.abc import Sequence

from callmeter.db import agents
from callmeter.db.agents import AgentRow
from callmeter.db.connection import Database
from callmeter.db.migrate import migrate
from callmeter.resolvers.agents import validate_agent
from callmeter.settings import Settings


async def open_database(settings: Settings) -> Database:
    """Connect, migrating the embedded database first so a fresh machine just works."""
    if settings.is_sqlite:
        migrate(settings.database_url)
    db = Database(settings.database_url, min_size=1, max_size=2)
    await db.connect()
    return db


async def add_agent(settings: Settings, *, user_id: int, name: str, numbers: Sequence[str]) -> AgentRow:
    name, cleaned = validate_agent(name, numbers)
    db = await open_database(settings)
    try:
        async with db.transaction() as conn:
            return await agents.insert_agent(conn, user_id=user_id, name=name, numbers=cleaned)
    finally:
        await db.disconnect()


async def list_all_agents(settings: Settings) -> list[AgentRow]:
    db = await open_database(settings)
    try:
        async with db.connection() as conn:
            return await agents.fetch_agents(conn)
    finally:
        await db.disconnect()
