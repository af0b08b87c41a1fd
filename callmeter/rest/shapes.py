"""The JSON shapes of the REST routes, as the original dashboard code reads them.

Money goes out as JSON numbers (the original dashboard calls `toFixed` on them); each is converted
from its exact `Decimal` only when written, and every amount here has at most 6 decimals, which a
double represents with the same shortest decimal text. Times are UTC, `"2026-02-18 14:30:00"`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callmeter.auth import Viewer, viewer_from_authorization
from callmeter.billing.usage import MonthSummary
from callmeter.errors import BadInputError
from callmeter.notifications import call_object, usage_object
from callmeter.resolvers.scope import target_user
from callmeter.resolvers.services import Services
from callmeter.rows import CallRow


class MoneyJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def query_param(request: Request, name: str) -> str | None:
    """A query parameter, by the rules of every REST route: an empty value (`?limit=`) is the same as
    leaving the parameter out, and a parameter given twice is bad input (which one would count?)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadInputError(f"{name} is given {len(values)} times: give it once")
    return values[0] if values and values[0] else None


def viewer_and_user(request: Request) -> tuple[Services, Viewer, int]:
    """The services, the viewer of the bearer token, and the user it reads (`?user_id=` for admins)."""
    services: Services = request.app.state.services
    viewer = viewer_from_authorization(services.settings, request.headers.get("authorization"))
    return services, viewer, target_user(viewer, query_param(request, "user_id"))


def usage_json(summary: MonthSummary) -> dict[str, object]:
    return usage_object(summary)


def call_json(call: CallRow) -> dict[str, object]:
    return call_object(call)
