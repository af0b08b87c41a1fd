"""Tokens and tenant isolation over real HTTP, on REST and GraphQL."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import pytest

from tests.factories import add_agent, auth, graphql, make_token

ROUTES = ["/api/usage/current", "/api/usage/history?month=2026-01", "/api/usage/calls"]


def alg_none_token(user_id: int) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": str(user_id), "exp": 4102444800, "role": "admin"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_TOKENS = {
    "expired": make_token(1, ttl=timedelta(seconds=-10)),
    "wrong-secret": make_token(1, secret="another-secret-entirely-0123456789"),
    "alg-none": alg_none_token(1),
    "no-exp": None,  # filled below
    "garbage": "not.a.jwt",
    "zero-user": make_token(0),
    "negative-user": make_token(-3),
}


def _no_exp() -> str:
    import jwt

    from tests.factories import JWT_SECRET

    return jwt.encode({"sub": "1"}, JWT_SECRET, algorithm="HS256")


BAD_TOKENS["no-exp"] = _no_exp()


@pytest.mark.parametrize("route", ROUTES)
async def test_rest_without_a_token_is_401(client, route):
    response = await client.get(route)
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_api_routes_answer_json(client):
    response = await client.get("/api/usage/nothing-here", headers=auth(1))
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    response = await client.post("/api/usage/current", headers=auth(1))
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401_and_unauthenticated(client, name):
    headers = {"Authorization": f"Bearer {BAD_TOKENS[name]}"}
    response = await client.get("/api/usage/current", headers=headers)
    assert response.status_code == 401
    body = await graphql(client, "{ usage { current { totalCalls } } }", headers=headers)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["data"] is None


async def test_a_number_sub_is_accepted(client):
    import jwt

    from tests.factories import JWT_SECRET

    token = jwt.encode({"sub": 5, "exp": 4102444800}, JWT_SECRET, algorithm="HS256")
    response = await client.get("/api/usage/current", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize("route", ROUTES)
async def test_rest_cross_user_reads_are_403_and_admins_may(client, route):
    sep = "&" if "?" in route else "?"
    assert (await client.get(f"{route}{sep}user_id=2", headers=auth(1))).status_code == 403
    assert (await client.get(f"{route}{sep}user_id=1", headers=auth(1))).status_code == 200
    assert (await client.get(f"{route}{sep}user_id=2", headers=auth(1, admin=True))).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        '{ usage(userId: "2") { current { totalCalls } } }',
        '{ usage(userId: "2") { calls { edges { cursor } } } }',
        '{ agents(userId: "2") { id } }',
    ],
)
async def test_graphql_cross_user_reads_are_forbidden(client, query):
    body = await graphql(client, query, headers=auth(1))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] is None
    admin = await graphql(client, query, headers=auth(1, admin=True))
    assert "errors" not in admin


async def test_another_users_call_by_sid_is_not_visible(server, client):
    from datetime import UTC, datetime

    from tests.factories import call_events, post_callback

    await add_agent(server.database_url, user_id=2, name="theirs", numbers=["+15550002222"])
    for form in call_events(
        "CA" + "a" * 32, answered_at=datetime(2026, 3, 1, 9, tzinfo=UTC), duration=60, to="+15550002222"
    ):
        await post_callback(client, server.base_url, form)
    query = '{ usage { call(callSid: "CA' + "a" * 32 + '") { callSid } calls { edges { cursor } } } }'
    body = await graphql(client, query, headers=auth(1))
    assert body["data"]["usage"] == {"call": None, "calls": {"edges": []}}
    owner = await graphql(client, query, headers=auth(2))
    assert owner["data"]["usage"]["call"] == {"callSid": "CA" + "a" * 32}


@pytest.mark.parametrize(
    "route",
    [
        "/api/usage/history?month=2026-13",
        "/api/usage/history?month=26-01",
        "/api/usage/history?month=2026-1",
        "/api/usage/calls?limit=0",
        "/api/usage/calls?limit=501",
        "/api/usage/calls?limit=ten",
        "/api/usage/current?user_id=abc",
        "/api/usage/history?month=0000-01",
        "/api/usage/calls?limit=" + "9" * 5000,
        "/api/usage/current?user_id=" + "9" * 5000,
        "/api/usage/calls?limit=5&limit=6",
        "/api/usage/current?user_id=1&user_id=",
    ],
)
async def test_bad_rest_input_is_400(client, route):
    response = await client.get(route, headers=auth(1, admin=True))
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_USER_INPUT"


async def test_an_empty_query_value_is_the_same_as_leaving_it_out(client):
    headers = auth(1, admin=True)
    for bare, empty in (
        ("/api/usage/calls", "/api/usage/calls?limit="),
        ("/api/usage/history", "/api/usage/history?month="),
        ("/api/usage/current", "/api/usage/current?user_id="),
        ("/api/usage/calls", "/api/usage/calls?limit=&user_id="),
    ):
        answers = [await client.get(route, headers=headers) for route in (bare, empty)]
        assert [answer.status_code for answer in answers] == [200, 200], empty
        assert answers[0].json() == answers[1].json()


FORGED_CURSOR = base64.urlsafe_b64encode(b"9999-12-31T23:59:59+00:00|" + b"9" * 23).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        '{ usage { month(month: "2026-00") { totalCalls } } }',
        '{ usage { history(from: "2026-05", to: "2026-01") { month } } }',
        "{ usage { calls(first: 0) { edges { cursor } } } }",
        "{ usage { calls(first: 501) { edges { cursor } } } }",
        '{ usage { calls(after: "!!!") { edges { cursor } } } }',
        '{ usage { calls(after: "' + FORGED_CURSOR + '") { edges { cursor } } } }',  # id over 2^63
        '{ usage { calls(agentId: "x") { edges { cursor } } } }',
        '{ usage(userId: "abc") { current { month } } }',
        '{ usage(userId: "' + "9" * 5000 + '") { current { month } } }',
    ],
)
async def test_bad_graphql_input_is_bad_user_input(client, query):
    body = await graphql(client, query, headers=auth(1, admin=True))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_create_agent_is_admin_only_and_validated(client):
    mutation = (
        """mutation($input: CreateAgentInput!) { createAgent(input: $input) { id name phoneNumbers } }"""
    )
    good = {"input": {"userId": "7", "name": "juana", "phoneNumbers": ["+18449263376"]}}
    body = await graphql(client, mutation, good, headers=auth(7))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await graphql(client, mutation, good, headers=auth(1, admin=True))
    assert body["data"]["createAgent"]["phoneNumbers"] == ["+18449263376"]
    for bad in (
        {**good["input"], "phoneNumbers": ["8449263376"]},
        {**good["input"], "name": " "},
        {**good["input"], "phoneNumbers": []},
        {**good["input"], "name": "ju\x00ana"},
        {**good["input"], "name": "ju\nana"},
        good["input"],
    ):  # the last: number taken
        body = await graphql(client, mutation, {"input": bad}, headers=auth(1, admin=True))
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", bad
    agents = await graphql(client, "{ agents { name phoneNumbers } }", headers=auth(7))
    assert agents["data"]["agents"] == [{"name": "juana", "phoneNumbers": ["+18449263376"]}]


async def test_a_token_accepted_before_still_expires_on_time(client):
    # The service verifies a token's signature once and caches it: the expiry is still checked each time.
    token = make_token(1, ttl=timedelta(seconds=2))
    assert (
        await client.get("/api/usage/current", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    await asyncio.sleep(2.2)
    response = await client.get("/api/usage/current", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "expired" in response.text


async def test_null_page_sizes_mean_the_default_and_impossible_sids_match_nothing(client):
    query = (
        'query($f: Int) { usage { calls(first: $f) { edges { cursor } } call(callSid: "CA\\u0000") { id } } }'
    )
    body = await graphql(client, query, {"f": None}, headers=auth(1))
    assert "errors" not in body and body["data"]["usage"] == {"calls": {"edges": []}, "call": None}
    body = await graphql(client, "{ unattributedEvents(first: null) { id } }", headers=auth(1, admin=True))
    assert body == {"data": {"unattributedEvents": []}}


@pytest.mark.parametrize("body", ['"hello"', "5", "null", "true"])
async def test_a_graphql_body_that_is_not_an_object_is_400(client, body):
    headers = {"Content-Type": "application/json", **auth(1)}
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400
    assert "JSON object" in response.text
    # GET queries may say `variables=null`: that is no variables, not a bad body.
    response = await client.get("/graphql", params={"query": "{ __typename }", "variables": "null"})
    assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}
