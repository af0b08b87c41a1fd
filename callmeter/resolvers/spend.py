"""Spend control: what a customer may still spend, and the gate a call asks before it starts.

The state is read from the database in the caller's connection; the rules are billing/allowance.py's.
The gate decides and takes its slot in one transaction with the customer's row locked, so slots stay
exact under races, across processes on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from callmeter.auth import Viewer
from callmeter.billing.allowance import Allowance
from callmeter.db import authorizations, customers
from callmeter.db.agents import AgentOwner, find_agent_owner
from callmeter.db.connection import Connection
from callmeter.db.spend import SpendState, lock_agent_customer, spend_state
from callmeter.errors import BadInputError, ForbiddenError, NotFoundError
from callmeter.resolvers.services import Services
from callmeter.rows import CustomerRow


async def customer_state(services: Services, *, user_id: int) -> SpendState:
    async with services.db.connection() as conn:
        customer = await customers.fetch_customer(conn, user_id=user_id)
        customer = customer or CustomerRow(user_id, services.settings.default_calendar)
        return await spend_state(
            conn, default_plan=services.default_plan, customer=customer, now=datetime.now(UTC)
        )


@dataclass(frozen=True)
class Decision:
    allowance: Allowance
    authorization_id: str | None = None


def check_owner(viewer: Viewer | None, owner: AgentOwner, *, user_id: int | None) -> None:
    """May the viewer ask for a call of this agent: their own; an admin's named user (if any) must
    own it. No viewer: Twilio's signed request to the voice gate, for an agent with a `voiceUrl`."""
    if viewer is None:
        if owner.voice_url is None:
            raise BadInputError(f"agent {owner.agent_id} has no voiceUrl to send an allowed call to")
    elif viewer.is_admin:
        if user_id is not None and user_id != owner.user_id:
            raise ForbiddenError(f"agent {owner.agent_id} is not user {user_id}'s")
    elif owner.user_id != viewer.user_id:
        raise ForbiddenError("you may only authorize calls of your own agents")


async def owned_agent(conn: Connection, viewer: Viewer, *, agent_id: int, user_id: int | None) -> AgentOwner:
    owner = await find_agent_owner(conn, agent_id=agent_id)
    if owner is None:
        raise NotFoundError(f"there is no agent {agent_id}")
    check_owner(viewer, owner, user_id=user_id)
    return owner


async def call_allowance(services: Services, viewer: Viewer, *, agent_id: int) -> Decision:
    """Whether a call of the agent may start now; holds nothing."""
    async with services.db.connection() as conn:
        owner = await owned_agent(conn, viewer, agent_id=agent_id, user_id=None)
        customer = await customers.fetch_customer(conn, user_id=owner.user_id)
        customer = customer or CustomerRow(owner.user_id, services.settings.default_calendar)
        state = await spend_state(
            conn, default_plan=services.default_plan, customer=customer, now=datetime.now(UTC)
        )
    return Decision(state.allowance())


async def authorize_call(
    services: Services,
    viewer: Viewer | None,
    *,
    agent_id: int,
    user_id: int | None = None,
    call_sid: str | None = None,
) -> tuple[AgentOwner, Decision]:
    """Decide whether a call of the agent may start, and if so hold a slot for it (tied to
    `call_sid` when it is known already, as in the voice gate). No viewer: Twilio's signed request
    to the voice gate, for an agent with a `voiceUrl`."""
    now = datetime.now(UTC)
    async with services.db.transaction() as conn:
        # The customer's row stays locked until commit: deciding and taking a slot do not interleave.
        found = await lock_agent_customer(conn, agent_id=agent_id)
        if found is None:  # no such agent, or its customer is seen for the first time
            owner = await find_agent_owner(conn, agent_id=agent_id)
            if owner is None:
                raise NotFoundError(f"there is no agent {agent_id}")
            check_owner(viewer, owner, user_id=user_id)
            customer = await customers.ensure_customer(
                conn, user_id=owner.user_id, calendar=services.settings.default_calendar, lock=True
            )
            schedule = None
        else:
            owner, customer, schedule = found.owner, found.customer, found.schedule
            check_owner(viewer, owner, user_id=user_id)
        state = await spend_state(
            conn, default_plan=services.default_plan, customer=customer, now=now, schedule=schedule
        )
        allowance = state.allowance()
        if not allowance.allowed:
            return owner, Decision(allowance)
        authorization_id = await authorizations.hold_slot(
            conn, user_id=owner.user_id, agent_id=owner.agent_id, call_sid=call_sid, now=now
        )
    return owner, Decision(replace(allowance, active_calls=allowance.active_calls + 1), authorization_id)
