"""The REST routes of the original dashboard: `/api/usage/current`, `/history` and `/calls`.

They share the resolvers with GraphQL; only the JSON shapes differ. Money goes out as JSON numbers
(as the original dashboard code expects: it calls `toFixed` on them); each is converted from its
exact `Decimal` only when written, and every amount here has at most 6 decimals, which a double
represents with the same shortest decimal text.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callmeter.auth import Viewer, viewer_from_authorization
from callmeter.db.calls import CallRow
from callmeter.errors import BadInputError, CallmeterError
from callmeter.invoice_formats import as_pdf
from callmeter.months import Month
from callmeter.resolvers import calls as call_resolvers
from callmeter.resolvers import usage as usage_resolvers
from callmeter.resolvers.invoices import invoice_for
from callmeter.resolvers.scope import target_user
from callmeter.resolvers.usage import MonthSummary


class MoneyJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def error_response(exc: CallmeterError) -> Response:
    # RFC 6750: a 401 names the scheme the client should authenticate with.
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse({"error": str(exc), "code": exc.code}, status_code=exc.http_status, headers=headers)


HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def http_error_response(status_code: int, detail: str, headers: dict[str, str] | None) -> Response:
    """Starlette's own errors (no such route, wrong method) in the same JSON shape."""
    code = HTTP_CODES.get(status_code, "BAD_REQUEST" if status_code < 500 else "INTERNAL_SERVER_ERROR")
    return JSONResponse({"error": detail, "code": code}, status_code=status_code, headers=headers)


def _viewer_and_user(request: Request) -> tuple[Viewer, int]:
    viewer = viewer_from_authorization(request.app.state.settings, request.headers.get("authorization"))
    return viewer, target_user(viewer, request.query_params.get("user_id"))


def usage_json(summary: MonthSummary) -> dict[str, object]:
    return {
        "month": summary.month,
        "total_calls": summary.total_calls,
        "total_minutes": summary.total_minutes,
        "total_cost_usd": summary.total_cost_usd,
    }


def call_json(call: CallRow) -> dict[str, object]:
    return {
        "id": call.id,
        "agent_name": call.agent_name,
        "call_from": call.call_from,
        "call_to": call.call_to,
        "duration_seconds": call.duration_seconds,
        "cost_usd": call.cost_usd,
        "started_at": _time(call.started_at),
        "ended_at": _time(call.ended_at),
        "status": call.status,
    }


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


async def _month_response(request: Request, month: Month) -> Response:
    _, user_id = _viewer_and_user(request)
    state = request.app.state
    async with state.db.connection() as conn:
        summary = await usage_resolvers.month_summary(
            conn, user_id=user_id, month=month, default_plan=state.default_plan
        )
    return MoneyJSONResponse(usage_json(summary))


async def current_usage(request: Request) -> Response:
    return await _month_response(request, Month.current())


async def usage_history(request: Request) -> Response:
    month = request.query_params.get("month")
    return await _month_response(request, Month.parse(month) if month else Month.current())


async def call_history(request: Request) -> Response:
    _, user_id = _viewer_and_user(request)
    raw_limit = request.query_params.get("limit", "50")
    if not raw_limit.isascii() or not raw_limit.isdigit() or len(raw_limit) > 9:
        raise BadInputError(f"limit must be a whole number from 1 to 500, got {raw_limit[:20]!r}")
    limit = call_resolvers.check_page_size(int(raw_limit), "limit")
    async with request.app.state.db.connection() as conn:
        page = await call_resolvers.call_page(conn, user_id=user_id, first=limit)
    return MoneyJSONResponse({"calls": [call_json(call) for call in page.calls]})


routes = [
    Route("/api/usage/current", current_usage, methods=["GET"]),
    Route("/api/usage/history", usage_history, methods=["GET"]),
    Route("/api/usage/calls", call_history, methods=["GET"]),
]


async def invoice_pdf(request: Request) -> Response:
    _, user_id = _viewer_and_user(request)
    month = Month.parse(request.path_params["month"])
    state = request.app.state
    async with state.db.connection() as conn:
        view = await invoice_for(conn, user_id=user_id, month=month, default_plan=state.default_plan)
    name = f"invoice-{view.number or 'draft'}-{view.month}.pdf"
    return Response(
        as_pdf([view]),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


routes.append(Route("/api/invoices/{month}.pdf", invoice_pdf, methods=["GET"]))
