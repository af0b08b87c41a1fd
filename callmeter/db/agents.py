"""Voice agents and the phone numbers they answer, which attribute calls to their owners."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import NamedTuple

import asyncpg
from sqlalchemy import bindparam, select

from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import agent_numbers, agents, customers
from callmeter.errors import BadInputError
from callmeter.rows import AgentRow


async def insert_agent(
    conn: Connection, *, user_id: int, name: str, numbers: Sequence[str], voice_url: str | None = None
) -> AgentRow:
    """Register an agent; the caller's transaction makes it all-or-nothing."""
    taken = await conn.fetch_all(
        select(agent_numbers.c.number).where(agent_numbers.c.number.in_(list(numbers)))
    )
    if taken:
        raise BadInputError(f"phone number {taken[0]['number']} already belongs to an agent")
    agent_id = await conn.fetch_val(
        agents.insert()
        .values(user_id=user_id, name=name, created_at=datetime.now(UTC), voice_url=voice_url)
        .returning(agents.c.id)
    )
    try:
        for number in numbers:
            await conn.execute(agent_numbers.insert().values(number=number, agent_id=agent_id))
    except (asyncpg.UniqueViolationError, sqlite3.IntegrityError):
        raise BadInputError("a phone number was registered by another agent just now") from None
    return AgentRow(agent_id, user_id, name, tuple(numbers), voice_url)


async def fetch_agents(
    conn: Connection, *, user_id: int | None = None, ids: Sequence[int] | None = None
) -> list[AgentRow]:
    """Agents of one user, or the agents with the given ids, with their numbers, by id."""
    query = select(
        agents.c.id, agents.c.user_id, agents.c.name, agents.c.voice_url, agent_numbers.c.number
    ).outerjoin(agent_numbers, agent_numbers.c.agent_id == agents.c.id)
    if user_id is not None:
        query = query.where(agents.c.user_id == user_id)
    if ids is not None:
        query = query.where(agents.c.id.in_(list(ids)))
    rows = await conn.fetch_all(query.order_by(agents.c.id, agent_numbers.c.number))
    found: dict[int, AgentRow] = {}
    for row in rows:
        agent = found.get(row["id"]) or AgentRow(row["id"], row["user_id"], row["name"], (), row["voice_url"])
        if row["number"] is not None:
            agent = replace(agent, phone_numbers=(*agent.phone_numbers, row["number"]))
        found[row["id"]] = agent
    return list(found.values())


class AgentOwner(NamedTuple):
    agent_id: int
    user_id: int
    timezones: str | None  # the customer's stored billing calendar; None: not seen yet
    voice_url: str | None = None


_OWNER = select(agents.c.id, agents.c.user_id, customers.c.timezones, agents.c.voice_url).outerjoin(
    customers, customers.c.user_id == agents.c.user_id
)
_OWNER_BY_ID = Prepared(_OWNER.where(agents.c.id == bindparam("agent_id")))
_OWNER_BY_NUMBER = Prepared(
    _OWNER.join(agent_numbers, agent_numbers.c.agent_id == agents.c.id).where(
        agent_numbers.c.number == bindparam("number")
    )
)


async def find_agent_owner(
    conn: Connection, *, agent_id: int | None = None, number: str | None = None
) -> AgentOwner | None:
    """The owner of the agent with that id, else of the one answering that number."""
    if agent_id is not None:
        row = await _OWNER_BY_ID.fetch_one(conn, agent_id=agent_id)
    elif number:
        row = await _OWNER_BY_NUMBER.fetch_one(conn, number=number)
    else:
        return None
    return AgentOwner(row["id"], row["user_id"], row["timezones"], row["voice_url"]) if row else None
