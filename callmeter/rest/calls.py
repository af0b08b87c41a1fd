"""`POST /api/calls/authorize`: the gate a voice agent asks before it places or answers a call."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from callmeter.auth import viewer_from_authorization
from callmeter.billing.allowance import Allowance
from callmeter.errors import BadInputError
from callmeter.inputs import MAX_ID
from callmeter.resolvers import spend
from callmeter.resolvers.scope import target_user
from callmeter.rest.shapes import MoneyJSONResponse, query_param


def allowance_json(allowance: Allowance, authorization_id: str | None) -> dict[str, object]:
    shown: dict[str, object] = {"allowed": allowance.allowed}
    if allowance.allowed:
        shown["authorization_id"] = authorization_id
    else:
        shown["reason"] = allowance.reason.value if allowance.reason else None
    shown |= {
        "max_duration_seconds": allowance.max_duration_seconds,
        "available_usd": allowance.available_usd,
        "active_calls": allowance.active_calls,
    }
    return shown


def agent_id_of(body: bytes) -> int:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nesting too deep
        raise BadInputError('the body must be JSON like {"agent_id": 12}') from None
    agent_id = payload.get("agent_id") if isinstance(payload, dict) else None
    if isinstance(agent_id, float) and agent_id.is_integer():  # JSON's 12.0 is the integer 12
        agent_id = int(agent_id)
    if not isinstance(agent_id, int) or isinstance(agent_id, bool) or not 0 < agent_id <= MAX_ID:
        raise BadInputError('the body must be JSON like {"agent_id": 12}: agent_id a positive whole number')
    return agent_id


async def authorize(request: Request) -> Response:
    services = request.app.state.services
    viewer = viewer_from_authorization(services.settings, request.headers.get("authorization"))
    named = query_param(request, "user_id")
    user_id = target_user(viewer, named) if named else None
    agent_id = agent_id_of(await request.body())
    _, decision = await spend.authorize_call(services, viewer, agent_id=agent_id, user_id=user_id)
    return MoneyJSONResponse(allowance_json(decision.allowance, decision.authorization_id))
