"""GraphQL over HTTP: the reference audit (graphql-http's `serverAudits`, from npm) passes every MUST
and SHOULD, and the media types behave as the spec says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from callmeter.schema.view import wants_graphql_response
from tests.factories import make_token

AUDIT = Path(__file__).resolve().parent / "audit"


def audit_tools() -> str:
    node = shutil.which("node")
    if node and (AUDIT / "node_modules" / "graphql-http").is_dir():
        return node
    reason = "node and tests/audit/node_modules (npm ci --prefix tests/audit) are needed"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_graphql_over_http_audit_passes_every_must_and_should(server):
    node = audit_tools()
    run = subprocess.run(
        [node, str(AUDIT / "audit.mjs"), server.base_url + "/graphql", make_token(1)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) >= 60, run.stdout
    failing = [
        f"{r['id']} {r['status']}: {r['name']} ({r.get('reason')})" for r in results if r["status"] != "ok"
    ]
    assert failing == []


async def test_refused_documents_are_400s_in_graphql_response_json_and_have_no_data(server, client):
    wanted = {"accept": "application/graphql-response+json", "authorization": f"Bearer {make_token(1)}"}
    for query in (
        "{ usage { current { month }",
        "{ nope }",
        "query($m: String!) { usage { month(month: $m) { month } } }",
    ):
        answer = await client.post("/graphql", json={"query": query}, headers=wanted)
        assert answer.status_code == 400, (query, answer.text)
        assert answer.headers["content-type"].startswith("application/graphql-response+json")
        assert "data" not in answer.json() and answer.json()["errors"]
        plain = await client.post(
            "/graphql", json={"query": query}, headers={"authorization": wanted["authorization"]}
        )
        assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
        assert "data" not in plain.json()
    ok = await client.post("/graphql", json={"query": "{ usage { current { month } } }"}, headers=wanted)
    assert ok.status_code == 200 and ok.json()["data"]["usage"]["current"]["month"]
    # An error while executing is still a 200 with data (null where it failed).
    denied = await client.post(
        "/graphql", json={"query": "{ usage(userId: 2) { current { month } } }"}, headers=wanted
    )
    assert denied.status_code == 200 and denied.json()["data"] is None


def test_the_accept_header_picks_the_media_type():
    assert wants_graphql_response("application/graphql-response+json")
    assert wants_graphql_response("application/graphql-response+json, application/json;q=0.9")
    assert wants_graphql_response("application/json, application/graphql-response+json")
    assert not wants_graphql_response("application/json;q=1, application/graphql-response+json;q=0.5")
    assert not wants_graphql_response("application/graphql-response+json;q=0")
    assert not wants_graphql_response("*/*")
    assert not wants_graphql_response(None)
    assert not wants_graphql_response("application/json")
