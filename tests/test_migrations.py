"""The Alembic migrations build exactly the schema the code's tables describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from callmeter.db.migrate import async_url
from callmeter.db.tables import metadata


async def test_migrations_match_the_tables(database_url):
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []
