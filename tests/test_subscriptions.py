"""Live subscriptions over real WebSockets against real `callmeter serve` processes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets

from callmeter.db.migrate import migrate
from tests.factories import (
    add_agent,
    auth,
    call_events,
    clear_tables,
    create_pg_database,
    make_token,
    post_callback,
    start_server,
)
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, Subscriber

ACTIVE = "subscription($u: ID) { activeCalls(userId: $u) { callSid status agent { name } } }"
EVENTS = "subscription($u: ID) { callEvents(userId: $u) { kind call { callSid status durationSeconds } } }"
USAGE = "subscription($u: ID) { usageUpdated(userId: $u) { month totalCalls totalSeconds totalCostUsd } }"
ANSWERED = datetime(2026, 4, 2, 10, tzinfo=UTC)
NUMBER_1, NUMBER_2 = "+15550000001", "+15550000002"


async def active_sids(subscriber: Subscriber) -> list[str]:
    payload = await subscriber.next()
    assert "errors" not in payload, payload
    return [call["callSid"] for call in payload["data"]["activeCalls"]]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_call_through_one_process_reaches_a_subscriber_of_another(database_url, tmp_path, protocol):
    await clear_tables(database_url)
    await add_agent(database_url, user_id=1, name="juana", numbers=[NUMBER_1])
    first = start_server(database_url, tmp_path)
    second = start_server(database_url, tmp_path)
    try:
        subscriber = await Subscriber.connect(first.base_url, make_token(1), protocol)
        await subscriber.subscribe(ACTIVE)
        assert await active_sids(subscriber) == []
        events = call_events("CA" + "1" * 32, answered_at=ANSWERED, duration=42, to=NUMBER_1)
        async with httpx.AsyncClient() as client:
            for form in events[:3]:
                assert (await post_callback(client, second.base_url, form)).status_code == 200
            assert "CA" + "1" * 32 in await wait_for_list(subscriber, lambda sids: sids)
            assert (await post_callback(client, second.base_url, events[3])).status_code == 200
            assert await wait_for_list(subscriber, lambda sids: not sids) == []
        await subscriber.close()
    finally:
        first.stop()
        second.stop()


async def wait_for_list(subscriber: Subscriber, done, frames: int = 10) -> list[str]:
    for _ in range(frames):
        sids = await active_sids(subscriber)
        if done(sids):
            return sids
    raise AssertionError("the expected list never came")


async def test_call_events_and_usage_updates(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER_1])
    events_sub = await Subscriber.connect(server.base_url, make_token(1))
    await events_sub.subscribe(EVENTS)
    usage_sub = await Subscriber.connect(server.base_url, make_token(1), LEGACY_WS)
    await usage_sub.subscribe(USAGE)
    await asyncio.sleep(0.2)
    for form in call_events("CA" + "2" * 32, answered_at=ANSWERED, duration=120, to=NUMBER_1):
        await post_callback(client, server.base_url, form)
    kinds = [(await events_sub.next())["data"]["callEvents"] for _ in range(4)]
    assert [event["kind"] for event in kinds] == ["UPDATED", "UPDATED", "STARTED", "ENDED"]
    assert kinds[-1]["call"] == {"callSid": "CA" + "2" * 32, "status": "COMPLETED", "durationSeconds": 120}
    usage = (await usage_sub.next())["data"]["usageUpdated"]
    assert usage == {"month": "2026-04", "totalCalls": 1, "totalSeconds": 120, "totalCostUsd": "0.10"}
    await events_sub.close()
    await usage_sub.close()


async def test_active_calls_are_sent_again_only_when_the_list_changes(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER_1])
    subscriber = await Subscriber.connect(server.base_url, make_token(1))
    await subscriber.subscribe(ACTIVE)
    assert await active_sids(subscriber) == []
    initiated, ringing, answered, completed = call_events(
        "CA" + "7" * 32, answered_at=ANSWERED, duration=30, to=NUMBER_1
    )
    for form in (initiated, ringing):
        assert (await post_callback(client, server.base_url, form)).status_code == 200
    assert await subscriber.no_data_within(0.5)  # ringing is not in progress: the list is the same
    await post_callback(client, server.base_url, answered)
    assert await active_sids(subscriber) == ["CA" + "7" * 32]
    await post_callback(client, server.base_url, completed)
    assert await active_sids(subscriber) == []
    await subscriber.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_subscription_ends_when_its_token_expires(server, protocol):
    subscriber = await Subscriber.connect(server.base_url, make_token(1, ttl=timedelta(seconds=2)), protocol)
    await subscriber.subscribe(ACTIVE)
    assert await active_sids(subscriber) == []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:  # keep-alives until the token's exp, then the close
            await subscriber.next(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert closed.value.rcvd.reason == "token expired"


async def test_a_legacy_reinit_with_a_fresh_token_keeps_the_connection(server):
    subscriber = await Subscriber.connect(server.base_url, make_token(1, ttl=timedelta(seconds=2)), LEGACY_WS)
    fresh = {"Authorization": f"Bearer {make_token(1)}"}
    await subscriber.connection.send(json.dumps({"type": "connection_init", "payload": fresh}))
    assert (await subscriber._receive(timeout=5))["type"] == "connection_ack"  # keep-alives skipped
    await subscriber.subscribe(ACTIVE)
    assert await active_sids(subscriber) == []
    assert await subscriber.no_data_within(3)  # past the first token's exp: still open
    await subscriber.close()


@pytest.mark.parametrize("query", [ACTIVE, EVENTS, USAGE])
async def test_a_subscriber_never_sees_another_users_calls(server, client, query):
    await add_agent(server.database_url, user_id=1, name="one", numbers=[NUMBER_1])
    await add_agent(server.database_url, user_id=2, name="two", numbers=[NUMBER_2])
    nosy = await Subscriber.connect(server.base_url, make_token(2))
    await nosy.subscribe(query, {"u": "1"})
    denied = await nosy.next()
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    own = await Subscriber.connect(server.base_url, make_token(2))
    await own.subscribe(query)
    if query == ACTIVE:
        assert await active_sids(own) == []
    await asyncio.sleep(0.2)
    for form in call_events("CA" + "3" * 32, answered_at=ANSWERED, duration=30, to=NUMBER_1):
        await post_callback(client, server.base_url, form)
    for form in call_events("CA" + "4" * 32, answered_at=ANSWERED, duration=30, to=NUMBER_2):
        await post_callback(client, server.base_url, form)
    frames = []
    while True:
        try:
            frames.append(await own.next(timeout=2))
        except TimeoutError:
            break
    assert frames, "user 2 should see their own call"
    assert "CA" + "3" * 32 not in str(frames) and "one" not in str(frames)
    assert await nosy.no_data_within(0.5)
    await nosy.close()
    await own.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize(
    "payload",
    [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Bearer " + make_token(1, secret="x" * 40)}],
)
async def test_connection_init_without_a_valid_token_is_refused(server, protocol, payload):
    with pytest.raises((ConnectionError, websockets.ConnectionClosed)):
        subscriber = await Subscriber.connect(server.base_url, None, protocol, payload=payload)
        await subscriber.subscribe(ACTIVE)
        await subscriber.next(timeout=5)


async def test_two_hundred_subscribers_all_receive_the_change(server, client):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=[NUMBER_1])
    subscribers = await asyncio.gather(
        *(Subscriber.connect(server.base_url, make_token(1)) for _ in range(200))
    )
    for subscriber in subscribers:
        await subscriber.subscribe(ACTIVE)
    assert {tuple(await active_sids(subscriber)) for subscriber in subscribers} == {()}
    form = call_events("CA" + "5" * 32, answered_at=ANSWERED, duration=30, to=NUMBER_1)[2]
    assert (await post_callback(client, server.base_url, form)).status_code == 200
    received = await asyncio.gather(*(active_sids(subscriber) for subscriber in subscribers))
    assert received == [["CA" + "5" * 32]] * 200
    await asyncio.gather(*(subscriber.close() for subscriber in subscribers))


async def test_subscribers_get_new_calls_after_a_postgres_restart(private_postgres, tmp_path):
    url = await asyncio.to_thread(create_pg_database, private_postgres.url, "callmeter_restart")
    migrate(url)
    await add_agent(url, user_id=1, name="juana", numbers=[NUMBER_1])
    handle = start_server(url, tmp_path)
    try:
        subscriber = await Subscriber.connect(handle.base_url, make_token(1))
        await subscriber.subscribe(ACTIVE)
        assert await active_sids(subscriber) == []
        private_postgres.restart()
        form = call_events("CA" + "6" * 32, answered_at=ANSWERED, duration=30, to=NUMBER_1)[2]
        async with httpx.AsyncClient() as client:
            for _ in range(100):  # the pool notices the restart on first use; Twilio would retry
                response = await post_callback(client, handle.base_url, form)
                if response.status_code == 200:
                    break
                assert response.status_code == 503
                await asyncio.sleep(0.1)
            assert response.status_code == 200
            assert "CA" + "6" * 32 in await wait_for_list(subscriber, lambda sids: sids)
            usage = await client.get(handle.base_url + "/api/usage/calls", headers=auth(1))
            assert usage.json()["calls"][0]["status"] == "active"
        await subscriber.close()
    finally:
        handle.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_serve_with_two_workers_delivers_to_every_subscriber(database_url, tmp_path):
    await clear_tables(database_url)
    await add_agent(database_url, user_id=1, name="juana", numbers=[NUMBER_1])
    handle = start_server(database_url, tmp_path, extra_args=("--workers", "2"))
    try:
        # Connections spread over both workers; each worker has its own listener.
        subscribers = [await Subscriber.connect(handle.base_url, make_token(1)) for _ in range(8)]
        for subscriber in subscribers:
            await subscriber.subscribe(ACTIVE)
            assert await active_sids(subscriber) == []
        async with httpx.AsyncClient() as client:
            for index in range(4):
                form = call_events(f"CA{index:032x}", answered_at=ANSWERED, duration=30, to=NUMBER_1)[2]
                assert (await post_callback(client, handle.base_url, form)).status_code == 200
        for subscriber in subscribers:
            assert len(await wait_for_list(subscriber, lambda sids: len(sids) == 4)) == 4
            await subscriber.close()
        assert "Started parent process" in handle.log() or handle.log().count("Started server process") == 2
    finally:
        handle.stop()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "token"),
        ({"Authorization": "Bearer nonsense"}, "token"),
        ("not an object", "payload must be an object"),
    ],
)
async def test_a_legacy_refusal_says_why(server, payload, reason):
    url = server.base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[LEGACY_WS], open_timeout=10) as connection:
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        message = json.loads(await asyncio.wait_for(connection.recv(), timeout=10))
    assert message["type"] == "connection_error"
    assert reason in message["payload"]["message"].lower(), message
