"""The OpenAPI description of the REST routes, served at `/openapi.json` (GraphQL describes itself)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callmeter.billing.allowance import Refusal
from callmeter.call_lifecycle import CallStatus
from callmeter.months import MONTH_PATTERN

_ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
}
_USAGE = {
    "type": "object",
    "required": ["month", "total_calls", "total_minutes", "total_cost_usd"],
    "properties": {
        "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "total_calls": {"type": "integer", "minimum": 0},
        "total_minutes": {"type": "number", "minimum": 0},
        "total_cost_usd": {"type": "number"},
    },
}
_CALL = {
    "type": "object",
    "required": [
        "id",
        "agent_name",
        "call_from",
        "call_to",
        "duration_seconds",
        "cost_usd",
        "total_cost_usd",
        "started_at",
        "ended_at",
        "status",
    ],
    "properties": {
        "id": {"type": "integer"},
        "agent_name": {"type": ["string", "null"]},
        "call_from": {"type": ["string", "null"]},
        "call_to": {"type": ["string", "null"]},
        "duration_seconds": {"type": "integer", "minimum": 0},
        "cost_usd": {"type": "number", "description": "The call's minutes."},
        "total_cost_usd": {"type": "number", "description": "The minutes and every metered component."},
        "started_at": {"type": ["string", "null"]},
        "ended_at": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": [status.value for status in CallStatus]},
    },
}
# Every query parameter follows one rule: an empty value (`?limit=`) is the same as leaving it out.
_EMPTY = "An empty value is the same as leaving the parameter out."


def _query(name: str, description: str, schema: dict[str, object]) -> dict[str, object]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": f"{description} {_EMPTY}",
        "schema": {"anyOf": [schema, {"type": "string", "maxLength": 0}]},
    }


_USER_ID = _query(
    "user_id", "Admins only: whose usage to read.", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
)


_ALLOWANCE = {
    "type": "object",
    "required": ["allowed", "max_duration_seconds", "available_usd", "active_calls"],
    "properties": {
        "allowed": {"type": "boolean"},
        "authorization_id": {"type": ["string", "null"], "description": "When allowed: the slot held."},
        "reason": {"type": "string", "enum": [refusal.value for refusal in Refusal]},
        "max_duration_seconds": {"type": ["integer", "null"], "minimum": 1},
        "available_usd": {"type": ["number", "null"]},
        "active_calls": {"type": "integer", "minimum": 0},
    },
}


# `(?!\\n)$`: the end, and only the end (a Python `$` also matches before a final line break).
_USAGE_EVENT = {
    "type": "object",
    "required": ["idempotency_key", "meter", "quantity", "occurred_at"],
    "additionalProperties": False,
    "properties": {
        "idempotency_key": {
            "type": "string",
            "pattern": "^[ -~]{1,200}(?!\\n)$",
            "description": "1 to 200 characters on one line: any text without control characters is taken, "
            "printable ASCII (a UUID, say) is what clients should send.",
        },
        "call_sid": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,64}(?!\\n)$"},
        "meter": {
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]{0,63}(?!\\n)$",
            "not": {"const": "telephony_minutes"},
        },
        "quantity": {
            "description": "Positive, at most 10^12, at most six decimal places; a string keeps it exact.",
            "oneOf": [
                {
                    "type": "string",
                    "pattern": "^((?!0*(\\.0*)?$)[0-9]{1,12}(\\.[0-9]{1,6})?|1000000000000(\\.0{1,6})?)$",
                },
                {"type": "integer", "minimum": 1, "maximum": 10**12},
            ],
        },
        "occurred_at": {
            "type": "string",
            "format": "date-time",
            "description": "With its UTC offset; within the last 400 days and at most a day ahead.",
        },
    },
}


def _errors(*codes: int) -> dict[str, object]:
    text = {
        400: "Bad input",
        401: "No or bad token",
        403: "Another user's data",
        404: "No such agent",
        409: "An idempotency key used for another event",
        503: "Database unavailable",
    }
    return {
        str(code): {"description": text[code], "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def _json(description: str, schema: dict[str, object]) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SPEC: dict[str, object] = {
    "openapi": "3.1.0",
    "info": {
        "title": "callmeter REST API",
        "version": "1",
        "description": "The routes of the original dashboard. GraphQL at /graphql has the rest.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/usage/current": {
            "get": {
                "summary": "This month's usage",
                "parameters": [_USER_ID],
                "responses": {"200": _json("Usage", _USAGE), **_errors(400, 401, 403, 503)},
            }
        },
        "/api/usage/history": {
            "get": {
                "summary": "A month's usage (zeros for a month without calls)",
                "parameters": [
                    _query(
                        "month",
                        "YYYY-MM; this month if left out.",
                        {"type": "string", "pattern": MONTH_PATTERN},
                    ),
                    _USER_ID,
                ],
                "responses": {"200": _json("Usage", _USAGE), **_errors(400, 401, 403, 503)},
            }
        },
        "/api/usage/calls": {
            "get": {
                "summary": "Call history, newest first",
                "parameters": [
                    _query(
                        "limit",
                        "How many, 1 to 500; 50 if left out.",
                        {"type": "integer", "minimum": 1, "maximum": 500},
                    ),
                    _USER_ID,
                ],
                "responses": {
                    "200": _json(
                        "Calls",
                        {
                            "type": "object",
                            "required": ["calls"],
                            "properties": {"calls": {"type": "array", "items": _CALL}},
                        },
                    ),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/invoices/{month}.pdf": {
            "get": {
                "summary": "A month's invoice as PDF (a live draft until finalized)",
                "parameters": [
                    {
                        "name": "month",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": MONTH_PATTERN},
                    },
                    _USER_ID,
                ],
                "responses": {
                    "200": {"description": "The PDF", "content": {"application/pdf": {}}},
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/calls/authorize": {
            "post": {
                "summary": "May a call of the agent start now? Allowed: a slot is held for it",
                "parameters": [{**_USER_ID, "description": f"Admins only: the agent's owner. {_EMPTY}"}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["agent_id"],
                                "properties": {
                                    "agent_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("The decision", _ALLOWANCE),
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/api/usage/events": {
            "post": {
                "summary": "Usage events (LLM tokens, TTS characters, ...), each stored once per key",
                "parameters": [{**_USER_ID, "description": f"Admins only: whose events these are. {_EMPTY}"}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["events"],
                                "additionalProperties": False,
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 500,
                                        "items": _USAGE_EVENT,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        "Stored",
                        {
                            "type": "object",
                            "required": ["accepted", "duplicates"],
                            "properties": {
                                "accepted": {"type": "integer", "minimum": 0},
                                "duplicates": {"type": "integer", "minimum": 0},
                            },
                        },
                    ),
                    **_errors(400, 401, 403, 409, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process is up",
                "security": [],
                "responses": {"200": {"description": "ok", "content": {"text/plain": {}}}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "The database is reachable",
                "security": [],
                "responses": {
                    "200": {"description": "ready", "content": {"application/json": {}}},
                    "503": {"description": "unavailable", "content": {"application/json": {}}},
                },
            }
        },
    },
}


async def openapi(request: Request) -> Response:
    return JSONResponse(SPEC)
