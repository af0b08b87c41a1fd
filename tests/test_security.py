"""Every entry point refuses what it must: a walk over the whole schema, JWT claims, and secrets in logs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest

from tests.factories import (
    JWT_SECRET,
    TWILIO_TOKEN,
    add_agent,
    auth,
    call_events,
    make_token,
    post_callback,
    run_cli,
    start_server,
)
from tests.ws_client import Subscriber

INTROSPECTION = """{ __schema { queryType { name } mutationType { name } subscriptionType { name }
  types { name kind fields { name
    args { name defaultValue type { kind name ofType { kind name ofType { kind name } } } }
    type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"""

SAMPLE_ARGUMENTS = {
    "month": '"2026-01"',
    "callSid": '"CA00000000000000000000000000000000"',
    "fromMonth": '"2026-01"',
    "planId": '"1"',
    "userId": '"2"',
    "timezone": '"America/New_York"',
    "agentId": '"1"',  # the walk registers an agent of user 2 and names it here
    "amountUsd": '"1.00"',
    "idempotencyKey": '"k1"',
    "endpointId": '"1"',
    "deliveryId": '"1"',
    "id": '"1"',
    "input": None,  # filled per mutation below
}
MUTATION_INPUTS = {
    "createAgent": '{userId: "2", name: "x", phoneNumbers: ["+15550000000"]}',
    "createPlan": '{name: "x", kind: PAY_AS_YOU_GO, ratePerMinute: "0.05"}',
    "setLimits": "{maxConcurrentCalls: 1}",
    "createWebhookEndpoint": '{url: "https://8.8.8.8/x", events: ["call.completed"]}',
    "createUsageAlert": '{userId: "2", metric: SPEND_USD, threshold: "10"}',
}
ADMIN_ONLY_QUERIES = {"unattributedEvents"}


def named(type_ref: dict) -> dict:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref


def required(arg: dict) -> bool:
    return arg["type"]["kind"] == "NON_NULL" and arg.get("defaultValue") is None


def selection(types: dict, type_name: str, depth: int = 0) -> str:
    """Every argument-free leaf of the type, or, where it has none, the selections of its object fields."""
    if types[type_name]["kind"] in ("SCALAR", "ENUM"):
        return ""
    fields = [field for field in types[type_name]["fields"] if not field["args"]]
    leaves = [
        field["name"] for field in fields if types[named(field["type"])["name"]]["kind"] in ("SCALAR", "ENUM")
    ]
    if not leaves and depth < 4:
        leaves = [
            f"{field['name']} {selection(types, named(field['type'])['name'], depth + 1)}" for field in fields
        ]
    return "{ " + " ".join(leaves) + " }"


def field_call(field: dict, extra: dict[str, str]) -> str:
    args = []
    for arg in field["args"]:
        if arg["name"] in extra:
            args.append(f"{arg['name']}: {extra[arg['name']]}")
        elif required(arg):
            value = (
                MUTATION_INPUTS.get(field["name"])
                if arg["name"] == "input"
                else SAMPLE_ARGUMENTS[arg["name"]]
            )
            args.append(f"{arg['name']}: {value}")
    return field["name"] + (f"({', '.join(args)})" if args else "")


@pytest.fixture(scope="module")
def schema_types(live_server) -> tuple[dict, dict]:
    body = httpx.post(
        live_server.base_url + "/graphql", json={"query": INTROSPECTION}, headers=auth(1)
    ).json()["data"]["__schema"]
    return body, {item["name"]: item for item in body["types"]}


def user_data_operations(schema: dict, types: dict) -> list[tuple[str, str]]:
    """(name, document) for every field that reads or changes user data, as another user (2) would ask."""
    operations = []
    for field in types[schema["queryType"]["name"]]["fields"]:
        if field["name"] == "usage":
            for inner in types["Usage"]["fields"]:
                leaves = selection(types, named(inner["type"])["name"])
                document = f'{{ usage(userId: "2") {{ {field_call(inner, {})} {leaves} }} }}'
                operations.append((f"usage.{inner['name']}", document))
        else:
            extra = {"userId": '"2"'} if any(arg["name"] == "userId" for arg in field["args"]) else {}
            operations.append(
                (
                    field["name"],
                    f"{{ {field_call(field, extra)} {selection(types, named(field['type'])['name'])} }}",
                )
            )
    for field in types[schema["mutationType"]["name"]]["fields"]:
        operations.append(
            (
                f"mutation.{field['name']}",
                f"mutation {{ {field_call(field, {})} {selection(types, named(field['type'])['name'])} }}",
            )
        )
    return operations


def test_the_walk_covers_every_root_and_usage_field(schema_types):
    schema, types = schema_types
    names = {name for name, _ in user_data_operations(schema, types)}
    expected = {f"usage.{field['name']}" for field in types["Usage"]["fields"]}
    expected |= {field["name"] for field in types["Query"]["fields"] if field["name"] != "usage"}
    expected |= {f"mutation.{field['name']}" for field in types["Mutation"]["fields"]}
    assert names == expected and len(names) >= 14


async def test_every_user_data_field_refuses_another_user_and_no_token(server, schema_types):
    schema, types = schema_types
    agent = await add_agent(server.database_url, user_id=2, name="theirs", numbers=[])
    SAMPLE_ARGUMENTS["agentId"] = f'"{agent}"'
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for name, document in user_data_operations(schema, types):
            as_other = (await client.post("/graphql", json={"query": document}, headers=auth(1))).json()
            codes = {error.get("extensions", {}).get("code") for error in as_other.get("errors", [])}
            assert codes == {"FORBIDDEN"}, (name, as_other)
            anonymous = (await client.post("/graphql", json={"query": document})).json()
            codes = {error.get("extensions", {}).get("code") for error in anonymous.get("errors", [])}
            assert codes == {"UNAUTHENTICATED"}, (name, anonymous)
            assert not any((as_other.get("data") or {}).values()), name


async def test_every_subscription_refuses_another_user(server, schema_types):
    schema, types = schema_types
    for field in types[schema["subscriptionType"]["name"]]["fields"]:
        subscriber = await Subscriber.connect(server.base_url, make_token(1))
        leaves = selection(types, named(field["type"])["name"])
        document = f'subscription {{ {field["name"]}(userId: "2") {leaves} }}'
        await subscriber.subscribe(document)
        result = await subscriber.next()
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", field["name"]
        await subscriber.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_issuer_and_audience_are_checked_when_configured(database_url, tmp_path):
    handle = start_server(database_url, tmp_path, JWT_ISSUER="callmeter", JWT_AUDIENCE="dashboard")
    try:
        async with httpx.AsyncClient(base_url=handle.base_url) as client:
            cases = {
                make_token(1, iss="callmeter", aud="dashboard"): 200,
                make_token(1): 401,
                make_token(1, iss="someone-else", aud="dashboard"): 401,
                make_token(1, iss="callmeter", aud="another-app"): 401,
            }
            for token, status in cases.items():
                response = await client.get(
                    "/api/usage/current", headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == status, (token, response.text)
    finally:
        handle.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_secret_is_ever_logged(database_url, tmp_path):
    secrets = {
        "JWT_SECRET": JWT_SECRET,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "STRIPE_API_KEY": "sk_test_never_logged_42",
    }
    handle = start_server(database_url, tmp_path, STRIPE_API_KEY=secrets["STRIPE_API_KEY"])
    try:
        async with httpx.AsyncClient(base_url=handle.base_url) as client:
            form = call_events("CA" + "9" * 32, answered_at=datetime(2026, 1, 1, tzinfo=UTC), duration=5)[3]
            await post_callback(client, handle.base_url, form)
            await post_callback(client, handle.base_url, form, token="wrong")
            await client.get(
                "/api/usage/current", headers={"Authorization": "Bearer " + make_token(1, secret="x" * 40)}
            )
            await client.post("/graphql", json={"query": "{ usage { current { month } } }"}, headers=auth(1))
        env = dict(handle_env(database_url), STRIPE_API_KEY=secrets["STRIPE_API_KEY"])
        outputs = [
            run_cli(args, env, tmp_path, timeout=60)
            for args in (["token", "--user", "1"], ["invoice", "--month", "2025-13"], ["migrate"])
        ]
        import os

        from callmeter.settings import load_settings

        os.environ.update(env)
        try:
            shown = repr(load_settings(env_file=None))
        finally:
            for key in env:
                if key not in handle_env(database_url) or key == "STRIPE_API_KEY":
                    os.environ.pop(key, None)
    finally:
        handle.stop()
    texts = [handle.log(), shown] + [
        out.stderr + (out.stdout if "token" not in out.args else "") for out in outputs
    ]
    for secret in secrets.values():
        assert not any(secret in text for text in texts), "a secret appears in output"


def handle_env(database_url: str) -> dict[str, str]:
    from tests.factories import server_env

    return server_env(database_url)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_logs_are_json_lines_with_the_call_sid(server, client):
    from tests.factories import add_agent

    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    sid = "CA" + "7" * 32
    for form in call_events(sid, answered_at=datetime(2026, 1, 1, tzinfo=UTC), duration=30):
        await post_callback(client, server.base_url, form)
    lines = [json.loads(line) for line in server.log().splitlines() if line]  # uvicorn's own too
    about_call = [line for line in lines if sid in line["msg"]]
    assert len(about_call) >= 2 and all(line["call_sid"] == sid for line in about_call)


async def test_metrics_count_callbacks_by_outcome(server, client):
    from tests.factories import add_agent

    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    events = call_events("CA" + "8" * 32, answered_at=datetime(2026, 1, 1, tzinfo=UTC), duration=30)
    before = await client.get("/metrics")
    for form in events[:3] + events[:1]:
        await post_callback(client, server.base_url, form)
    await post_callback(client, server.base_url, events[3], token="wrong")
    text = (await client.get("/metrics")).text

    def value(name: str, body: str) -> float:
        found = [line for line in body.splitlines() if line.startswith(name + " ")]
        return float(found[0].split()[-1]) if found else 0.0

    recorded = 'callmeter_callbacks_total{outcome="recorded"}'
    assert value(recorded, text) - value(recorded, before.text) == 3
    assert value('callmeter_callbacks_total{outcome="duplicate"}', text) >= 1
    assert value('callmeter_callbacks_total{outcome="bad_signature"}', text) >= 1
    assert value("callmeter_active_calls", text) == 1
    assert "callmeter_callback_recording_seconds_bucket" in text and "callmeter_subscribers" in text


async def test_graphql_limits_give_clear_errors(client):
    deep = "{ usage { calls { edges { node { agent { id } } } } } }"  # depth 6: fine
    assert "errors" not in (await client.post("/graphql", json={"query": deep}, headers=auth(1))).json()
    # The schema has no cycles, so no real query is deeper than 10; an empty selection set is refused.
    body = (await client.post("/graphql", json={"query": "{ usage { calls { } } }"}, headers=auth(1))).json()
    assert body["errors"][0]["message"] == "Selection sets must not be empty."
    aliases = "{ " + " ".join(f"a{i}: usage {{ current {{ month }} }}" for i in range(31)) + " }"
    body = (await client.post("/graphql", json={"query": aliases}, headers=auth(1))).json()
    assert "aliases" in body["errors"][0]["message"].lower()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    tokens = "{ usage { current { " + "month " * 2100 + "} } }"
    body = (await client.post("/graphql", json={"query": tokens}, headers=auth(1))).json()
    assert "token" in body["errors"][0]["message"].lower()
    assert "code" in body["errors"][0]["extensions"]
    body = (await client.post("/graphql", json={"query": "{ usage {"}, headers=auth(1))).json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    body = (await client.post("/graphql", json={"query": "{ nothing }"}, headers=auth(1))).json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    huge = await client.post(
        "/graphql",
        content=b'{"query": "' + b" " * (1024 * 1024 + 10) + b'"}',
        headers={"Content-Type": "application/json", **auth(1)},
    )
    assert huge.status_code == 413


async def test_every_http_response_says_how_long_the_service_took(server, client):
    for response in [
        await client.get("/healthz"),
        await client.get("/api/usage/current", headers=auth(1)),
        await client.get("/api/usage/current"),  # errors too
    ]:
        timing = response.headers.get("server-timing", "")
        assert re.fullmatch(r"app;dur=\d+\.\d{3}", timing), (response.status_code, timing)
        assert float(timing.split("=")[1]) < 30_000


def test_a_log_line_is_one_line_whatever_the_message_holds():
    import logging

    from callmeter.logs import JSONLineFormatter

    message = "from \x85 fuzz\u2028 input\u2029 \n Núñez \x1c"
    record = logging.LogRecord("callmeter", logging.INFO, __file__, 1, message, None, None)
    line = JSONLineFormatter().format(record)
    assert len(line.splitlines()) == 1 and "Núñez" in line
    assert json.loads(line)["msg"] == message
