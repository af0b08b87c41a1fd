"""Calls whose final callback was lost: closed from Twilio's record, or flagged stale, never guessed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.factories import (
    add_agent,
    auth,
    call_events,
    graphql,
    post_callback,
    run_cli,
    server_env,
    start_server,
)
from tests.fake_twilio import start_fake_twilio

ANSWERED = datetime(2026, 5, 4, 9, tzinfo=UTC)
ACCOUNT = "AC" + "f" * 32
QUERY = """{ usage { current: month(month: "2026-05") { totalCalls totalSeconds totalCostUsd }
  a: call(callSid: "CA%s") { status durationSeconds costUsd endedAt } } }"""


async def answer(client, server, sid: str) -> None:
    for form in call_events(sid, answered_at=ANSWERED, duration=95)[:3]:  # the `completed` never comes
        assert (await post_callback(client, server.base_url, form)).status_code == 200


async def test_reconcile_closes_flags_and_leaves_calls(server, client, tmp_path):
    fake, twilio = start_fake_twilio()
    try:
        await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
        done, going, unknown = "CA" + "a" * 32, "CA" + "b" * 32, "CA" + "c" * 32
        for sid in (done, going, unknown):
            await answer(client, server, sid)
        fake.call(done, "completed", 95, "Mon, 04 May 2026 09:01:35 +0000")
        fake.call(going, "in-progress", None)
        env = server_env(
            server.database_url,
            TWILIO_ACCOUNT_SID=ACCOUNT,
            TWILIO_API_BASE=f"http://127.0.0.1:{twilio.server_port}",
        )
        result = run_cli(["reconcile", "--older-than", "0"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert (
            "3 stale calls: 1 closed from Twilio, 1 still active, 1 flagged stale, 0 errors" in result.stdout
        )
        assert {path.rsplit("/", 1)[-1] for _, path, _ in fake.requests} == {
            f"{done}.json",
            f"{going}.json",
            f"{unknown}.json",
        }
        assert {user for _, _, user in fake.requests} == {ACCOUNT}
        body = await graphql(client, QUERY % ("a" * 32), headers=auth(1))
        usage = body["data"]["usage"]
        assert usage["current"] == {"totalCalls": 1, "totalSeconds": 95, "totalCostUsd": "0.08"}
        assert usage["a"] == {
            "status": "COMPLETED",
            "durationSeconds": 95,
            "costUsd": "0.08",
            "endedAt": "2026-05-04T09:01:35+00:00",
        }
        # The lost callback arriving after all changes nothing.
        late = call_events(done, answered_at=ANSWERED, duration=95)[3]
        assert (await post_callback(client, server.base_url, late)).status_code == 200
        again = await graphql(client, QUERY % ("a" * 32), headers=auth(1))
        assert again["data"]["usage"]["current"]["totalCalls"] == 1
        active = await graphql(client, "{ usage { activeCalls { callSid } } }", headers=auth(1))
        assert sorted(call["callSid"] for call in active["data"]["usage"]["activeCalls"]) == [going, unknown]
    finally:
        twilio.shutdown()


async def test_without_credentials_calls_are_flagged_stale_never_guessed(server, client, tmp_path):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    await answer(client, server, "CA" + "d" * 32)
    result = run_cli(["reconcile", "--older-than", "0"], server_env(server.database_url), tmp_path)
    assert result.returncode == 0 and "1 flagged stale" in result.stdout
    body = await graphql(client, QUERY % ("d" * 32), headers=auth(1))
    assert body["data"]["usage"]["a"]["status"] == "ACTIVE"
    assert body["data"]["usage"]["current"]["totalCalls"] == 0
    recent = run_cli(["reconcile"], server_env(server.database_url), tmp_path)  # default: 4 hours idle
    assert "checked 0 stale calls" in recent.stdout


async def test_serve_reconciles_periodically(database_url, tmp_path):
    from tests.factories import clear_tables

    await clear_tables(database_url)
    fake, twilio = start_fake_twilio()
    handle = start_server(
        database_url,
        tmp_path,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_API_BASE=f"http://127.0.0.1:{twilio.server_port}",
        RECONCILE_AFTER_SECONDS="0.5",
        RECONCILE_INTERVAL_SECONDS="0.5",
    )
    try:
        import httpx

        await add_agent(database_url, user_id=1, name="juana", numbers=["+18449263376"])
        sid = "CA" + "e" * 32
        fake.call(sid, "no-answer", 0, "Mon, 04 May 2026 09:00:30 +0000")
        async with httpx.AsyncClient(base_url=handle.base_url) as client:
            await answer(client, handle, sid)
            for _ in range(100):
                body = await graphql(client, QUERY % ("e" * 32), headers=auth(1))
                if body["data"]["usage"]["a"]["status"] != "ACTIVE":
                    break
                await asyncio.sleep(0.1)
            assert body["data"]["usage"]["a"]["status"] == "FAILED"
            assert "closed by reconciliation as no-answer" in handle.log()
    finally:
        handle.stop()
        twilio.shutdown()


async def test_calls_never_asked_about_come_first_and_errors_exit_non_zero(server, client, tmp_path):
    from datetime import timedelta

    from callmeter.db import calls
    from tests.factories import open_db

    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    first, second = "CA" + "e" * 32, "CA" + "f" * 32
    await answer(client, server, first)
    await answer(client, server, second)
    db = await open_db(server.database_url)
    try:
        now = datetime.now(UTC)
        async with db.transaction() as conn:
            (oldest,) = await calls.stale_calls(conn, idle_since=now, limit=1)
            assert oldest.call_sid == first
            await calls.mark_reconciled(conn, call_ids=[oldest.id], at=now)
            # A call reconciliation could not close never holds back one it has not asked about...
            later = now + timedelta(seconds=1)
            assert [call.call_sid for call in await calls.stale_calls(conn, idle_since=later, limit=1)] == [
                second
            ]
            # ...and is asked about again only once it has been idle that long since.
            assert [call.call_sid for call in await calls.stale_calls(conn, idle_since=now)] == [second]
    finally:
        await db.disconnect()
    unreachable = server_env(
        server.database_url, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE="http://127.0.0.1:1"
    )
    result = run_cli(["reconcile", "--older-than", "0"], unreachable, tmp_path)
    assert result.returncode == 1 and "2 errors" in result.stdout, (result.stdout, result.stderr)
