"""The GraphQL schema as its own layer: documents run through `schema.execute` with a typed context
(the viewer and the services), on both databases, as Strawberry's own tests do. What each field
answers, and the codes of what it refuses; HTTP and WebSocket are the end-to-end tests' job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from starlette.datastructures import Secret

from callmeter.auth import Viewer
from callmeter.db.recording import record_status_callback
from callmeter.resolvers.services import Services, open_services
from callmeter.schema.context import Context
from callmeter.schema.view import schema
from callmeter.settings import Settings
from callmeter.webhooks.parsing import parse_status_callback
from tests.factories import JWT_SECRET, TWILIO_TOKEN, add_agent, call_events, callback_form, direct_of

JANUARY = datetime(2026, 1, 14, 15, tzinfo=UTC)


@pytest.fixture
async def services(clean_database: str) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=clean_database,
        jwt_secret=Secret(JWT_SECRET),
        twilio_auth_tokens=(Secret(TWILIO_TOKEN),),
        public_base_url=None,
        price_per_minute=Decimal("0.05"),
        host="127.0.0.1",
        port=8000,
        database_direct_url=direct_of(clean_database),
    )
    async with open_services(settings, migrate_first=False) as opened:
        yield opened


async def execute(services: Services, document: str, viewer: Viewer | None, **variables: object) -> dict:
    result = await schema.execute(
        document, variable_values=variables, context_value=Context(services=services, viewer=viewer)
    )
    errors = [{"message": error.message, **(error.extensions or {})} for error in result.errors or []]
    return {"data": result.data, "errors": errors}


async def record(services: Services, form: dict[str, str]) -> None:
    event = parse_status_callback(form, received_at=datetime.now(UTC))
    await record_status_callback(
        services.db,
        event=event,
        form=form,
        agent_id=None,
        default_plan=services.default_plan,
        default_calendar=services.settings.default_calendar,
    )


async def answered_calls(services: Services, *durations: int) -> None:
    await add_agent(services.settings.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    for n, duration in enumerate(durations):
        for form in call_events(f"CA{n:032d}", answered_at=JANUARY + timedelta(hours=n), duration=duration):
            await record(services, form)


USER, OTHER, ADMIN = Viewer(1), Viewer(2), Viewer(99, is_admin=True)
MONTH = """query($u: ID, $m: String!) { usage(userId: $u) { month(month: $m) {
  month totalCalls totalSeconds totalMinutes totalCostUsd usageChargeUsd plan { id kind } } } }"""


async def test_a_month_is_its_calls_rated_exactly(services):
    await answered_calls(services, 90, 30, 61)
    result = await execute(services, MONTH, USER, m="2026-01")
    assert result["errors"] == []
    assert result["data"]["usage"]["month"] == {
        "month": "2026-01",
        "totalCalls": 3,
        "totalSeconds": 181,
        "totalMinutes": 3.0,
        "totalCostUsd": "0.15",  # 181 s at 0.05/min = 0.150833, rounded once
        "usageChargeUsd": "0.15",
        "plan": {"id": "default", "kind": "PAY_AS_YOU_GO"},
    }


async def test_tenant_scope_and_authentication_are_enforced_by_the_fields(services):
    await answered_calls(services, 90)
    assert (await execute(services, MONTH, OTHER, u="1", m="2026-01"))["errors"][0]["code"] == "FORBIDDEN"
    assert (await execute(services, MONTH, None, m="2026-01"))["errors"][0]["code"] == "UNAUTHENTICATED"
    admin = await execute(services, MONTH, ADMIN, u="1", m="2026-01")
    assert admin["data"]["usage"]["month"]["totalCalls"] == 1
    empty = await execute(services, MONTH, OTHER, m="2026-01")
    assert empty["data"]["usage"]["month"]["totalCalls"] == 0


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "", "0000-01"])
async def test_malformed_months_are_bad_user_input(services, month):
    result = await execute(services, MONTH, USER, m=month)
    assert result["data"] is None and result["errors"][0]["code"] == "BAD_USER_INPUT"


CALLS = """query($first: Int, $after: String, $status: CallStatus) { usage {
  calls(first: $first, after: $after, status: $status) {
    edges { cursor node { callSid status durationSeconds costUsd agent { name phoneNumbers } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""


async def test_call_pages_follow_their_cursors_newest_first(services):
    await answered_calls(services, 10, 20, 30)
    busy_at = JANUARY - timedelta(hours=1)
    await record(services, callback_form("CA" + "f" * 32, "busy", sequence=1, at=busy_at, duration=0))
    first = (await execute(services, CALLS, USER, first=2))["data"]["usage"]["calls"]
    assert [edge["node"]["durationSeconds"] for edge in first["edges"]] == [30, 20]
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    assert first["edges"][0]["node"]["agent"] == {"name": "juana", "phoneNumbers": ["+18449263376"]}
    after = first["pageInfo"]["endCursor"]
    rest = (await execute(services, CALLS, USER, first=5, after=after))["data"]["usage"]["calls"]
    assert [edge["node"]["durationSeconds"] for edge in rest["edges"]] == [10, 0]
    assert not rest["pageInfo"]["hasNextPage"] and rest["pageInfo"]["hasPreviousPage"]
    failed = (await execute(services, CALLS, USER, status="FAILED"))["data"]["usage"]["calls"]["edges"]
    assert [(edge["node"]["status"], edge["node"]["costUsd"]) for edge in failed] == [("FAILED", "0.00")]
    for first_, after_ in ((0, None), (501, None), (5, "not-a-cursor")):
        refused = await execute(services, CALLS, USER, first=first_, after=after_)
        assert refused["errors"][0]["code"] == "BAD_USER_INPUT"


CREATE_AGENT = """mutation($u: ID!, $n: [String!]!) { createAgent(input: {userId: $u, name: "ana",
  phoneNumbers: $n}) { id name phoneNumbers } }"""
AGENTS = "query($u: ID) { agents(userId: $u) { name phoneNumbers } }"


async def test_agents_are_created_by_admins_and_listed_to_their_owner(services):
    refused = await execute(services, CREATE_AGENT, USER, u="1", n=["+15550002222"])
    assert refused["errors"][0]["code"] == "FORBIDDEN"
    created = await execute(services, CREATE_AGENT, ADMIN, u="1", n=["+15550002222"])
    assert created["data"]["createAgent"]["phoneNumbers"] == ["+15550002222"]
    again = await execute(services, CREATE_AGENT, ADMIN, u="3", n=["+15550002222"])
    assert again["errors"][0]["code"] == "BAD_USER_INPUT"
    bad = await execute(services, CREATE_AGENT, ADMIN, u="1", n=["5550002222"])
    assert bad["errors"][0]["code"] == "BAD_USER_INPUT"
    assert (await execute(services, AGENTS, USER))["data"]["agents"] == [
        {"name": "ana", "phoneNumbers": ["+15550002222"]}
    ]
    assert (await execute(services, AGENTS, OTHER))["data"]["agents"] == []
    assert (await execute(services, AGENTS, OTHER, u="1"))["errors"][0]["code"] == "FORBIDDEN"


UNATTRIBUTED = "{ unattributedEvents { callSid callStatus callTo } }"


async def test_unattributed_events_are_for_admins_only(services):
    await record(
        services, callback_form("CA" + "e" * 32, "ringing", sequence=1, at=JANUARY, to="+15559990000")
    )
    assert (await execute(services, UNATTRIBUTED, USER))["errors"][0]["code"] == "FORBIDDEN"
    events = (await execute(services, UNATTRIBUTED, ADMIN))["data"]["unattributedEvents"]
    assert events == [{"callSid": "CA" + "e" * 32, "callStatus": "ringing", "callTo": "+15559990000"}]


INVOICE = """query($m: String!) { usage { invoice(month: $m) { status number totalUsd pdfUrl
  lines { description quantity amountUsd } } } }"""
FINALIZE = 'mutation { finalizeInvoices(month: "2026-01") { number status totalUsd } }'


async def test_a_draft_invoice_becomes_final_once_and_keeps_its_lines(services):
    await answered_calls(services, 600, 1200)
    draft = (await execute(services, INVOICE, USER, m="2026-01"))["data"]["usage"]["invoice"]
    assert draft["status"] == "DRAFT" and draft["number"] is None and draft["totalUsd"] == "1.50"
    assert draft["lines"] == [
        {"description": "Usage at $0.05/min", "quantity": "30.0000", "amountUsd": "1.50"}
    ]
    assert draft["pdfUrl"] == "/api/invoices/2026-01.pdf"
    assert (await execute(services, FINALIZE, USER))["errors"][0]["code"] == "FORBIDDEN"
    (final,) = (await execute(services, FINALIZE, ADMIN))["data"]["finalizeInvoices"]
    assert final["status"] == "FINALIZED" and final["number"].startswith("CM-202601-")
    assert (await execute(services, FINALIZE, ADMIN))["data"]["finalizeInvoices"] == [final]
    shown = (await execute(services, INVOICE, USER, m="2026-01"))["data"]["usage"]["invoice"]
    assert (shown["number"], shown["lines"]) == (final["number"], draft["lines"])
