"""Hostile and malformed callbacks: refused with the right status, and nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from tests.factories import (
    add_agent,
    auth,
    call_events,
    callback_form,
    graphql,
    post_callback,
    sign,
    start_server,
)

NUMBER = "+18449263376"
AT = datetime(2026, 2, 18, 14, 30, tzinfo=UTC)


async def stored_calls(client, user_id: int = 1) -> list:
    return (await client.get("/api/usage/calls?limit=500", headers=auth(user_id))).json()["calls"]


async def unattributed(client) -> list:
    body = await graphql(
        client, "{ unattributedEvents { callSid callStatus callTo } }", headers=auth(1, admin=True)
    )
    return body["data"]["unattributedEvents"]


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", None])
async def test_unsigned_or_mis_signed_callbacks_are_refused(server, client, signature):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    form = call_events("CA" + "1" * 32, answered_at=AT, duration=60)[3]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    response = await client.post("/webhooks/twilio/status", content=urlencode(form), headers=headers)
    assert response.status_code == 403
    assert await stored_calls(client) == []
    assert await unattributed(client) == []


async def test_signature_with_the_wrong_token_or_a_tampered_body_is_refused(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    form = call_events("CA" + "2" * 32, answered_at=AT, duration=60)[3]
    response = await post_callback(client, server.base_url, form, token="not-the-token")
    assert response.status_code == 403
    signature = sign(server.callback_url, form)
    tampered = {**form, "CallDuration": "6000"}
    response = await post_callback(client, server.base_url, tampered, signature=signature)
    assert response.status_code == 403
    # The agent_id query parameter is covered by the signature too.
    response = await post_callback(client, server.base_url, form, signature=signature, query="agent_id=1")
    assert response.status_code == 403
    assert await stored_calls(client) == []


async def test_hmac_sha256_signatures_when_the_settings_header_asks(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER])
    form = callback_form("CA" + "3" * 32, "in-progress", sequence=2, at=AT)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        "X-Twilio-Signature": sign(server.callback_url, form, algorithm="HMAC_SHA256"),
    }
    response = await client.post("/webhooks/twilio/status", content=urlencode(form), headers=headers)
    assert response.status_code == 200
    headers["X-Twilio-Signature"] = sign(server.callback_url, form)  # SHA-1 where SHA-256 is asked
    response = await client.post("/webhooks/twilio/status", content=urlencode(form), headers=headers)
    assert response.status_code == 403
    assert len(await stored_calls(client)) == 1


@pytest.mark.parametrize(
    "form",
    [
        {"foo": "bar"},
        {"CallSid": "CA" + "4" * 32},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "exploded"},
        {"CallSid": "not a sid!", "CallStatus": "completed"},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "completed", "CallDuration": "-5"},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "completed", "CallDuration": "12.5"},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "ringing", "SequenceNumber": "x"},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "ringing", "Timestamp": "yesterday-ish"},
        # PostgreSQL cannot store NUL in text: refused on both databases, in any field.
        {"CallSid": "CA" + "4" * 32, "CallStatus": "ringing", "From": "+1555\x00"},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "ringing", "AccountSid": "AC\x00"},
        {"CallSid": "CA" + "4" * 32, "CallStatus": "ringing", "Extra\x00": "x"},
    ],
)
async def test_signed_bodies_that_are_not_status_callbacks_get_400(server, client, form):
    response = await post_callback(client, server.base_url, form)
    assert response.status_code == 400
    assert response.text.strip()
    assert await unattributed(client) == []


async def test_a_non_integer_agent_id_is_400(server, client):
    form = callback_form("CA" + "4" * 32, "ringing", sequence=1, at=AT)
    for agent_id in ("abc", "9" * 5000):  # past Python's 4,300-digit int() limit too
        response = await post_callback(client, server.base_url, form, query=f"agent_id={agent_id}")
        assert response.status_code == 400


async def test_oversize_bodies_get_413_and_nothing_is_stored(server, client):
    form = {**callback_form("CA" + "5" * 32, "ringing", sequence=1, at=AT), "Padding": "x" * 70_000}
    response = await post_callback(client, server.base_url, form)
    assert response.status_code == 413

    async def chunks():
        for _ in range(80):
            yield b"a" * 1024  # no Content-Length: the limit holds while streaming too

    response = await client.post(
        "/webhooks/twilio/status", content=chunks(), headers={"X-Twilio-Signature": "x"}
    )
    assert response.status_code == 413
    assert await unattributed(client) == []


async def test_unknown_numbers_are_kept_for_admins_and_answered_202(server, client):
    form = callback_form("CA" + "6" * 32, "completed", sequence=3, at=AT, duration=30, to="+15551234567")
    response = await post_callback(client, server.base_url, form)
    assert response.status_code == 202
    assert (await post_callback(client, server.base_url, form)).status_code == 202  # repeat: kept once
    response = await post_callback(client, server.base_url, form, query="agent_id=999")
    assert response.status_code == 202
    events = await unattributed(client)
    assert events == [{"callSid": "CA" + "6" * 32, "callStatus": "completed", "callTo": "+15551234567"}]
    forbidden = await graphql(client, "{ unattributedEvents { callSid } }", headers=auth(1))
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_token_rotation_and_public_base_url(database_url, session_dir, tmp_path):
    """Behind a proxy: signatures are checked against PUBLIC_BASE_URL; old and new tokens both work."""
    import httpx

    from tests.factories import clear_tables

    await clear_tables(database_url)
    await add_agent(database_url, user_id=1, name="juana", numbers=[NUMBER])
    public = "https://billing.example.com"
    handle = start_server(
        database_url, tmp_path, TWILIO_AUTH_TOKEN="old-token, new-token", PUBLIC_BASE_URL=public
    )
    try:
        async with httpx.AsyncClient(base_url=handle.base_url) as client:
            events = call_events("CA" + "7" * 32, answered_at=AT, duration=60)
            url = public + "/webhooks/twilio/status"
            for form, token in zip(events, ["old-token", "new-token", "old-token", "new-token"], strict=True):
                response = await post_callback(
                    client, handle.base_url, form, signature=sign(url, form, token)
                )
                assert response.status_code == 200
            # Signed for the internal URL the proxy forwarded to: not what Twilio signed.
            late = {**events[3], "SequenceNumber": "7"}
            response = await post_callback(client, handle.base_url, late, token="new-token")
            assert response.status_code == 403
            calls = (await client.get("/api/usage/calls", headers=auth(1))).json()["calls"]
            assert [call["status"] for call in calls] == ["completed"]
    finally:
        handle.stop()
