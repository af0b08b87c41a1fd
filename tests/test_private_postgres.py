"""The private cluster fixture itself: it starts, serves callmeter's schema, and survives a restart."""

from __future__ import annotations

import asyncpg

from callmeter.db.migrate import migrate


async def test_private_cluster_restarts_and_keeps_data(private_postgres):
    migrate(private_postgres.url)
    conn = await asyncpg.connect(private_postgres.url)
    await conn.execute("INSERT INTO monthly_usage VALUES (1, '2026-01', 1, 60, 60, 0.05, now())")
    await conn.close()
    private_postgres.restart()
    conn = await asyncpg.connect(private_postgres.url)
    assert await conn.fetchval("SELECT total_seconds FROM monthly_usage") == 60
    await conn.close()
