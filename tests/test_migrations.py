"""The Alembic migrations build exactly the schema the code's tables describe, on both databases."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from callmeter.db.connection import Database
from callmeter.db.migrate import alembic_config, async_url
from callmeter.db.tables import metadata
from tests.conftest import ADMIN_URL, require_backend
from tests.factories import create_pg_database, direct, drop_pg_database

BACKENDS = ["sqlite", "postgresql"]  # migrations run on a direct connection, never through a pooler


async def test_migrations_match_the_tables(database_url):
    engine = create_async_engine(async_url(direct(database_url)))  # migrations go direct, not pooled
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []


@pytest.fixture
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A database of the backend `request.param` with no schema at all."""
    require_backend(request.param)
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    url = create_pg_database(ADMIN_URL, f"callmeter_migrate_{secrets.token_hex(4)}")
    yield url
    drop_pg_database(ADMIN_URL, url)


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
async def test_customers_migration_keeps_data_and_makes_every_known_user_utc(empty_database_url):
    url = empty_database_url
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0005")
    db = Database(url, min_size=1, max_size=1)
    await db.connect()
    try:
        async with db.transaction() as conn:
            now = "2026-09-30 23:00:00+00"
            await conn.execute(f"INSERT INTO agents (user_id, name, created_at) VALUES (3, 'a', '{now}')")
            await conn.execute(
                "INSERT INTO monthly_usage (user_id, month, total_calls, total_seconds, billable_seconds, "
                f"usage_charge_usd, updated_at) VALUES (4, '2026-09', 2, 120, 120, 0.10, '{now}')"
            )
            await conn.execute(
                "INSERT INTO plan_assignments (user_id, from_month, assigned_at) "
                f"VALUES (3, '2026-10', '{now}')"
            )
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        async with db.connection() as conn:
            found = [
                (row[0], row[1])
                for row in await conn.fetch_all("SELECT user_id, timezones FROM customers ORDER BY 1")
            ]
            kept = await conn.fetch_one("SELECT total_calls, usage_charge_usd FROM monthly_usage")
            assert await conn.fetch_val("SELECT count(*) FROM agents") == 1
        assert found == [(3, '[["0001-01","UTC"]]'), (4, '[["0001-01","UTC"]]')]
        assert (kept[0], Decimal(str(kept[1]))) == (2, Decimal("0.10"))
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")  # and back again
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    finally:
        await db.disconnect()


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
async def test_spend_control_migration_keeps_every_customer_postpaid_without_limits(empty_database_url):
    url = empty_database_url
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0006")
    db = Database(url, min_size=1, max_size=1)
    await db.connect()
    try:
        async with db.transaction() as conn:
            now = "2026-09-30 23:00:00+00"
            await conn.execute(
                "INSERT INTO customers (user_id, timezones, created_at) "
                f"VALUES (3, '[[\"0001-01\",\"UTC\"]]', '{now}')"
            )
            await conn.execute(f"INSERT INTO agents (user_id, name, created_at) VALUES (3, 'a', '{now}')")
            await conn.execute(
                "INSERT INTO monthly_usage (user_id, month, total_calls, total_seconds, billable_seconds, "
                f"usage_charge_usd, updated_at) VALUES (3, '2026-09', 2, 120, 120, 0.10, '{now}')"
            )
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        async with db.connection() as conn:
            customer = await conn.fetch_one(
                "SELECT balance_usd, monthly_spend_cap_usd, max_concurrent_calls, enforce, low_balance_usd "
                "FROM customers"
            )
            month = await conn.fetch_one(
                "SELECT usage_charge_usd, credit_base_usd, drawn_usd, invoiced_drawn_usd FROM monthly_usage"
            )
            agent = await conn.fetch_one("SELECT name, voice_url FROM agents")
        assert [customer[i] for i in range(5)] == [None, None, None, False, None]
        assert Decimal(str(month[0])) == Decimal("0.10") and month[1] is None
        assert (Decimal(str(month[2])), Decimal(str(month[3]))) == (0, 0)
        assert (agent[0], agent[1]) == ("a", None)
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0006")
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    finally:
        await db.disconnect()


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
async def test_meters_migration_keeps_plans_and_invoice_lines(empty_database_url):
    url = empty_database_url
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0009")
    db = Database(url, min_size=1, max_size=1)
    await db.connect()
    try:
        async with db.transaction() as conn:
            now = "2026-11-30 23:00:00+00"
            await conn.execute(
                "INSERT INTO plans (name, kind, rate_per_minute, billing_increment_seconds, "
                f"minimum_billable_seconds, created_at) VALUES ('p', 'PAY_AS_YOU_GO', 0.05, 1, 0, '{now}')"
            )
            await conn.execute(
                "INSERT INTO invoices (user_id, month, number, plan_name, billed_calls, billed_seconds, "
                "billed_billable_seconds, billed_usage_charge_usd, total_usd, finalized_at) "
                f"VALUES (3, '2026-10', 'CM-1', 'p', 1, 60, 60, 0.05, 0.05, '{now}')"
            )
            await conn.execute(
                "INSERT INTO invoice_lines (invoice_id, position, description, quantity, unit_price_usd, "
                "amount_usd) VALUES (1, 1, 'Usage', 1.0000, 0.05, 0.05)"
            )
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        async with db.connection() as conn:
            plan = await conn.fetch_one("SELECT name, meter_rates FROM plans")
            line = await conn.fetch_one("SELECT description, quantity, amount_usd FROM invoice_lines")
            assert await conn.fetch_val("SELECT count(*) FROM usage_events") == 0
        assert (plan[0], plan[1]) == ("p", "[]")
        assert (line[0], Decimal(str(line[1])), Decimal(str(line[2]))) == ("Usage", 1, Decimal("0.05"))
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0009")
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    finally:
        await db.disconnect()
