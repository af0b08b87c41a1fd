"""Fuzzing the edges: hypothesis over callbacks and REST inputs, schemathesis over OpenAPI and GraphQL.

No input may produce a 5xx (the database is up), an internal GraphQL error, or stored garbage.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from callmeter.billing.plans import validate_plan
from callmeter.db import agents, plans
from callmeter.resolvers.agents import E164
from callmeter.rest.openapi import SPEC
from callmeter.schema.view import schema as callmeter_schema
from tests.factories import auth, open_db, sign

FIELDS = [
    "CallSid",
    "CallStatus",
    "SequenceNumber",
    "Timestamp",
    "CallDuration",
    "From",
    "To",
    "Direction",
    "AccountSid",
    "Duration",
    "CallbackSource",
]
STATUSES = [
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "answered",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
    "COMPLETED",
    "",
    "exploded",
]
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
forms = st.dictionaries(
    st.sampled_from(FIELDS) | text,
    st.sampled_from(STATUSES) | text | st.integers(-5, 10**12).map(str),
    max_size=12,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(
    form=forms,
    signed=st.booleans(),
    query=st.sampled_from(["", "agent_id=1", "agent_id=x", "agent_id=-1"]),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain"]),
)
def test_arbitrary_callbacks_never_break_the_service(live_server, form, signed, query, content_type):
    url = live_server.callback_url + (f"?{query}" if query else "")
    headers = {"Content-Type": content_type}
    if signed:
        headers["X-Twilio-Signature"] = sign(url, form)
    response = httpx.post(url, content=urlencode(form), headers=headers, timeout=10)
    assert response.status_code in (200, 202, 400, 403, 413), response.text
    if not signed:
        assert response.status_code in (403, 413)


@FUZZ
@given(month=text, limit=text, user_id=text)
def test_arbitrary_rest_parameters_are_answered_not_crashed_on(live_server, month, limit, user_id):
    with httpx.Client(base_url=live_server.base_url, headers=auth(1, admin=True), timeout=10) as client:
        for path, params in (
            ("/api/usage/history", {"month": month}),
            ("/api/usage/calls", {"limit": limit}),
            ("/api/usage/current", {"user_id": user_id}),
        ):
            response = client.get(path, params=params)
            assert response.status_code in (200, 400), (path, params, response.text)


# schemathesis' own pytest plugin does not run under pytest 9, so its strategies are used directly.
def operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


def recent_events(case) -> None:
    """Usage events' `occurred_at` within the window the service takes (the last 400 days, a day
    ahead), which JSON Schema cannot say of a date-time: any generated time, moved into it."""
    if case.operation.path == "/api/usage/events" and isinstance(case.body, dict):
        for event in case.body.get("events") or []:
            if isinstance(event, dict) and isinstance(event.get("occurred_at"), str):
                event["occurred_at"] = datetime.now(UTC).isoformat()


def known_parameters(operation) -> set[str]:
    spec = SPEC["paths"][operation.path][operation.method.lower()]
    return {parameter["name"] for parameter in spec.get("parameters", [])}


def test_rest_routes_conform_to_their_openapi_description(live_server):
    schema = schemathesis.openapi.from_url(live_server.base_url + "/openapi.json")
    found = operations(schema)
    assert {operation.path for operation in found} >= {
        "/api/usage/current",
        "/api/usage/history",
        "/api/usage/calls",
        "/api/invoices/{month}.pdf",
    }
    for operation in found:
        modes = [GenerationMode.POSITIVE]
        if operation.method.upper() == "GET" and known_parameters(
            operation
        ):  # parameters only: what the schema forbids is refused
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                # Unknown query parameters are ignored, as most APIs do (README): not a violation.
                assume(set(case.query or {}) <= known_parameters(case.operation))
                # A parameter generated as an empty list is not sent at all: the server sees it left
                # out (valid), while schemathesis counts the case as invalid and expects a refusal.
                assume(all(value != [] for value in (case.query or {}).values()))
                recent_events(case)
                # Every default check: no 5xx, status codes, content types and bodies as documented,
                # schema-valid requests accepted and (negative mode) schema-invalid ones refused.
                case.call_and_validate(headers=auth(1, admin=True))

            check()


# Money is a Decimal scalar (a string): exact amounts, and some text that is not an amount at all.
schemathesis.graphql.scalar(
    "Decimal",
    (st.decimals(min_value=-10, max_value=10**6, places=6).map(str) | text).map(
        schemathesis.graphql.nodes.String
    ),
)


def test_graphql_operations_never_fail_internally(live_server):
    schema = schemathesis.graphql.from_url(live_server.base_url + "/graphql", headers=auth(1, admin=True))
    found = operations(schema)
    roots = [callmeter_schema.schema_converter.type_map[name].definition for name in ("Query", "Mutation")]
    assert len(found) == sum(len(root.fields) for root in roots)  # every Query and Mutation root field
    for operation in found:

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers=auth(1, admin=True))
            assert response.status_code < 500, response.text
            for error in response.json().get("errors") or []:
                # An execution error (it has a path) must be one of ours, with a code; else it is a bug.
                if error.get("path"):
                    assert error.get("extensions", {}).get("code"), (case.body, error)

        check()


def test_fuzzing_stored_no_garbage(live_server):
    async def check() -> None:
        db = await open_db(live_server.database_url)
        try:
            async with db.connection() as conn:
                for agent in await agents.fetch_agents(conn):
                    assert agent.name.strip() and all(E164.match(number) for number in agent.phone_numbers)
                for plan in await plans.list_plans(conn):
                    validate_plan(plan)
                rows = await conn.fetch_all("SELECT status, twilio_status, duration_seconds FROM call_usage")
                for row in rows:
                    assert row["status"] in ("active", "completed", "failed"), row["twilio_status"]
                    assert row["duration_seconds"] >= 0
        finally:
            await db.disconnect()

    asyncio.run(check())
