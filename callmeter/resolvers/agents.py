"""Voice agents: registering one (a name, E.164 numbers not repeated) and reading them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from callmeter.db import agents, customers
from callmeter.errors import BadInputError
from callmeter.inputs import absolute_url, is_one_line
from callmeter.resolvers.services import Services
from callmeter.rows import AgentRow

E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def validate_agent(name: str, numbers: Sequence[str]) -> tuple[str, list[str]]:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadInputError("agent name must be 1 to 200 characters")
    if not is_one_line(name):
        raise BadInputError("agent name must not contain control characters or line breaks")
    if not numbers:
        raise BadInputError("an agent needs at least one phone number")
    cleaned = [number.strip() for number in numbers]
    for number in cleaned:
        if not E164.match(number):
            raise BadInputError(f"phone number {number[:20]!r} is not E.164 (like +18449263376)")
    if len(set(cleaned)) != len(cleaned):
        raise BadInputError("the same phone number is listed twice")
    return name, cleaned


def validate_voice_url(url: str | None) -> str | None:
    """An absolute http(s) URL Twilio can fetch TwiML from, or None."""
    if url is None or url == "":
        return None
    absolute_url(url, name="voiceUrl", schemes=("https", "http"))
    return url


async def create_agent(
    services: Services, *, user_id: int, name: str, numbers: Sequence[str], voice_url: str | None = None
) -> AgentRow:
    name, cleaned = validate_agent(name, numbers)
    voice_url = validate_voice_url(voice_url)
    async with services.db.transaction() as conn:
        await customers.ensure_customer(conn, user_id=user_id, calendar=services.settings.default_calendar)
        return await agents.insert_agent(
            conn, user_id=user_id, name=name, numbers=cleaned, voice_url=voice_url
        )


async def list_agents(services: Services, *, user_id: int | None) -> list[AgentRow]:
    """One user's agents, by id; every agent for None (the operator's CLI)."""
    async with services.db.connection() as conn:
        return await agents.fetch_agents(conn, user_id=user_id)


async def agents_by_ids(services: Services, ids: Sequence[int]) -> list[AgentRow | None]:
    """The agents with these ids, in that order (None where there is none): a DataLoader's batch."""
    async with services.db.connection() as conn:
        found = {row.id: row for row in await agents.fetch_agents(conn, ids=ids)}
    return [found.get(agent_id) for agent_id in ids]
