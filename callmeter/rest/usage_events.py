"""`POST /api/usage/events`: usage events from the agent, in batches of 1 to 500."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from callmeter.errors import BadInputError
from callmeter.resolvers.usage_events import record_usage_events
from callmeter.rest.shapes import MoneyJSONResponse, viewer_and_user


async def usage_events(request: Request) -> Response:
    services, _, user_id = viewer_and_user(request)
    try:
        payload = json.loads(await request.body())
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nesting too deep
        raise BadInputError('the body must be JSON like {"events": [...]}') from None
    if not isinstance(payload, dict) or set(payload) != {"events"}:
        raise BadInputError('the body must be JSON like {"events": [...]}')
    accepted, duplicates = await record_usage_events(services, user_id=user_id, raw=payload["events"])
    return MoneyJSONResponse({"accepted": accepted, "duplicates": duplicates})
