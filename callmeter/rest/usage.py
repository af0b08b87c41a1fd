"""`/api/usage/current`, `/api/usage/history` and `/api/usage/calls`: the original dashboard's routes,
on the same resolvers as GraphQL."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from callmeter.errors import BadInputError
from callmeter.inputs import digits
from callmeter.months import Month
from callmeter.resolvers import calls, usage
from callmeter.rest.shapes import MoneyJSONResponse, call_json, query_param, usage_json, viewer_and_user


async def current_usage(request: Request) -> Response:
    services, _, user_id = viewer_and_user(request)
    return MoneyJSONResponse(usage_json(await usage.current_usage(services, user_id=user_id)))


async def usage_history(request: Request) -> Response:
    services, _, user_id = viewer_and_user(request)
    month = query_param(request, "month")
    if month is None:
        return MoneyJSONResponse(usage_json(await usage.current_usage(services, user_id=user_id)))
    summary = await usage.month_usage(services, user_id=user_id, month=Month.parse(month))
    return MoneyJSONResponse(usage_json(summary))


async def call_history(request: Request) -> Response:
    services, _, user_id = viewer_and_user(request)
    raw_limit = query_param(request, "limit") or str(calls.DEFAULT_PAGE)
    limit = digits(raw_limit, max_digits=9)
    if limit is None:
        raise BadInputError(f"limit must be a whole number from 1 to 500, got {raw_limit[:20]!r}")
    page = await calls.call_page(services, user_id=user_id, first=calls.check_page_size(limit, "limit"))
    return MoneyJSONResponse({"calls": [call_json(call) for call in page.calls]})
