"""What the CLI's database commands do, as plain async functions the tests call too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg

from callmeter.billing.plans import Plan, pay_as_you_go
from callmeter.db import agents
from callmeter.db import plans as db_plans
from callmeter.db.agents import AgentRow
from callmeter.db.bus import LiveBus
from callmeter.db.connection import Database
from callmeter.db.migrate import head_revision, migrate, schema_revision
from callmeter.errors import ConfigError
from callmeter.months import Month
from callmeter.reconciliation import ReconcileReport, reconcile_stale_calls
from callmeter.resolvers.agents import validate_agent
from callmeter.resolvers.invoices import InvoiceView, finalize_month, month_invoices
from callmeter.resolvers.plans import assign_plan, create_plan
from callmeter.settings import Settings
from callmeter.stripe_push import push_invoice


@asynccontextmanager
async def opened_database(settings: Settings) -> AsyncIterator[Database]:
    """Connected, migrating the embedded database first so a fresh machine just works."""
    if settings.is_sqlite:
        migrate(settings.database_url)
    db = Database(settings.database_url, min_size=1, max_size=2)
    await db.connect()
    try:
        yield db
    except asyncpg.UndefinedTableError:
        raise ConfigError("the database has no callmeter tables: run `callmeter migrate`") from None
    finally:
        await db.disconnect()


async def check_database(settings: Settings) -> None:
    """Connect once, so `serve` reports in one line a database it cannot open or that is not migrated
    to this version's schema (say, new code deployed without running `callmeter migrate`)."""
    async with opened_database(settings) as db, db.connection() as conn:
        current = await schema_revision(conn)
    needed = head_revision()
    if current != needed:
        raise ConfigError(
            f"the database schema is at revision {current}, this callmeter needs {needed}: "
            "run `callmeter migrate`"
        )


async def add_agent(settings: Settings, *, user_id: int, name: str, numbers: Sequence[str]) -> AgentRow:
    name, cleaned = validate_agent(name, numbers)
    async with opened_database(settings) as db:
        async with db.transaction() as conn:
            return await agents.insert_agent(conn, user_id=user_id, name=name, numbers=cleaned)


async def list_all_agents(settings: Settings) -> list[AgentRow]:
    async with opened_database(settings) as db:
        async with db.connection() as conn:
            return await agents.fetch_agents(conn)


async def invoice_views(
    settings: Settings, *, month: Month, user_id: int | None, finalize: bool, push_to_stripe: bool
) -> list[InvoiceView]:
    """The invoices of a month (finalized ones, else live drafts), optionally finalized and pushed."""
    default_plan = pay_as_you_go(settings.price_per_minute)
    async with opened_database(settings) as db:
        if finalize:
            views = await finalize_month(db, month=month, default_plan=default_plan, user_id=user_id)
        else:
            async with db.connection() as conn:
                views = await month_invoices(conn, month=month, user_id=user_id, default_plan=default_plan)
        if push_to_stripe:
            pushed = []
            for view in views:
                stripe_id = await push_invoice(db, settings, view)
                pushed.append(replace(view, stripe_invoice_id=stripe_id))
            views = pushed
        return views


async def add_plan(settings: Settings, plan: Plan) -> Plan:
    async with opened_database(settings) as db:
        return await create_plan(db, plan)


async def assign_plan_to_user(
    settings: Settings, *, user_id: int, plan_id: int | None, from_month: Month
) -> Plan:
    async with opened_database(settings) as db:
        return await assign_plan(
            db,
            user_id=user_id,
            plan_id=plan_id,
            from_month=from_month,
            default_plan=pay_as_you_go(settings.price_per_minute),
        )


async def all_plans(settings: Settings) -> list[Plan]:
    async with opened_database(settings) as db:
        async with db.connection() as conn:
            return await db_plans.list_plans(conn)


async def reconcile_calls(settings: Settings, *, idle_seconds: float) -> ReconcileReport:
    async with opened_database(settings) as db:
        return await reconcile_stale_calls(
            db,
            settings,
            default_plan=pay_as_you_go(settings.price_per_minute),
            bus=LiveBus(db),
            idle_seconds=idle_seconds,
        )
