"""Faults: SIGKILL during a storm of callbacks, and a PostgreSQL outage. Nothing acknowledged is lost.

Each test writes its figures (sent, acknowledged, stored, lost) to test-artifacts/ for RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from callmeter.db.migrate import migrate
from tests.conftest import ADMIN_URL, require_backend
from tests.factories import (
    add_agent,
    auth,
    call_events,
    clear_tables,
    create_pg_database,
    drop_pg_database,
    graphql,
    post_callback,
    start_server,
)
from tests.storm import NUMBER, Storm, check_exact

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


async def test_sigkill_mid_storm_loses_no_acknowledged_event(database_url, tmp_path):
    await clear_tables(database_url)
    await add_agent(database_url, user_id=1, name="juana", numbers=[NUMBER])
    storm = Storm(calls=150, seed=11)
    handle = start_server(database_url, tmp_path)
    stop = asyncio.Event()

    async def killer() -> None:
        while len(storm.acked) < len(storm.events) * 0.4:
            await asyncio.sleep(0.005)
        os.kill(handle.process.pid, signal.SIGKILL)  # no shutdown, transactions in flight abandoned
        await asyncio.sleep(0.5)
        stop.set()

    await asyncio.gather(storm.send(handle.base_url, list(range(len(storm.events))), stop=stop), killer())
    handle.process.wait()
    acked_before_kill = set(storm.acked)
    assert 0 < len(acked_before_kill) < len(storm.events)
    restarted = start_server(database_url, tmp_path)
    try:
        for _ in range(5):  # Twilio retries what was not acknowledged
            await storm.send(restarted.base_url, storm.pending())
        assert storm.pending() == []
        figures = await check_exact(
            storm, restarted.base_url, database_url, f"sigkill-{database_url.split(':')[0]}"
        )
        assert figures["lost"] == 0
    finally:
        restarted.stop()


async def test_database_outage_answers_5xx_and_recovers_without_restart(private_postgres, tmp_path):
    url = await asyncio.to_thread(create_pg_database, private_postgres.url, "callmeter_outage")
    migrate(url)
    await add_agent(url, user_id=1, name="juana", numbers=[NUMBER])
    storm = Storm(calls=150, seed=12)
    handle = start_server(url, tmp_path)
    try:
        stop = asyncio.Event()
        outage: dict[str, set[int]] = {}

        async def outage_window() -> None:
            while len(storm.acked) < len(storm.events) * 0.3:
                await asyncio.sleep(0.005)
            await asyncio.to_thread(private_postgres.stop, "immediate")
            outage["acked_at_stop"] = set(storm.acked)
            await asyncio.sleep(2)
            outage["acked_while_down"] = set(storm.acked)
            stop.set()

        await asyncio.gather(
            storm.send(handle.base_url, list(range(len(storm.events))), stop=stop), outage_window()
        )
        assert sum(storm.refused.values()) > 0, "the service said 5xx while the database was down"
        await asyncio.to_thread(private_postgres.start)
        for _ in range(20):  # the same process, no restart: it must recover by itself
            await storm.send(handle.base_url, storm.pending())
            if not storm.pending():
                break
            await asyncio.sleep(0.5)
        assert storm.pending() == []
        figures = await check_exact(storm, handle.base_url, url, "postgres-outage")
        assert figures["lost"] == 0
        ready = httpx.get(handle.base_url + "/readyz")
        assert ready.status_code == 200
    finally:
        handle.stop()
        conn = await asyncpg.connect(private_postgres.url)
        await conn.execute('DROP DATABASE IF EXISTS "callmeter_outage" WITH (FORCE)')
        await conn.close()


async def test_readyz_reports_an_unreachable_database(private_postgres, tmp_path):
    url = await asyncio.to_thread(create_pg_database, private_postgres.url, "callmeter_ready")
    migrate(url)
    handle = start_server(url, tmp_path)
    try:
        await asyncio.to_thread(private_postgres.stop)
        async with httpx.AsyncClient(base_url=handle.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/api/usage/current", headers=auth(1))).status_code == 503
        await asyncio.to_thread(private_postgres.start)
        for _ in range(50):
            if httpx.get(handle.base_url + "/readyz").status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert httpx.get(handle.base_url + "/readyz").status_code == 200
    finally:
        handle.stop()


async def test_a_database_refusing_connections_is_503_everywhere(tmp_path):
    """Not down but refusing (`ALLOW_CONNECTIONS false`, its sessions ended): every route says
    503 / SERVICE_UNAVAILABLE, never a 500, and all is well again once it accepts connections."""
    require_backend("postgresql")
    url = await asyncio.to_thread(create_pg_database, ADMIN_URL, f"callmeter_refusing_{os.getpid()}")
    name = url.rsplit("/", 1)[1]
    migrate(url)
    handle = start_server(url, tmp_path)
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        async with httpx.AsyncClient(base_url=handle.base_url) as client:
            assert (await client.get("/readyz")).status_code == 503
            response = await client.get("/api/usage/current", headers=auth(1))
            assert response.status_code == 503
            assert response.json()["code"] == "SERVICE_UNAVAILABLE"
            body = await graphql(client, "{ usage { current { totalCalls } } }", headers=auth(1))
            assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            form = call_events("CA" + "9" * 32, answered_at=datetime.now(UTC), duration=30)[0]
            assert (await post_callback(client, handle.base_url, form)).status_code == 503
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            for _ in range(50):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/api/usage/current", headers=auth(1))).status_code == 200
    finally:
        handle.stop()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await asyncio.to_thread(drop_pg_database, ADMIN_URL, url)


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def test_sqlite_callbacks_wait_for_another_process_writing(tmp_path):
    """The embedded database shared with a CLI command (`invoice --finalize`, `agent add`) that writes
    while callbacks arrive: they wait for its transactions instead of answering 503."""
    import sqlite3
    import threading

    path = tmp_path / "shared.db"
    handle = start_server(f"sqlite:///{path}", tmp_path)
    stop = threading.Event()

    def other_process_writes() -> None:
        with sqlite3.connect(path, timeout=15) as other:
            while not stop.is_set():  # short write transactions, as a CLI command makes
                other.execute("BEGIN IMMEDIATE")
                other.execute("UPDATE agents SET name = name")
                time.sleep(0.005)
                other.execute("COMMIT")
                time.sleep(0.02)

    try:
        await add_agent(handle.database_url, user_id=1, name="juana", numbers=[NUMBER])
        writer = threading.Thread(target=other_process_writes)
        writer.start()
        try:
            async with httpx.AsyncClient(base_url=handle.base_url, timeout=30) as client:
                sids = [f"CA{index:032x}" for index in range(40)]
                forms = [form for sid in sids for form in call_events(sid, answered_at=AT, duration=61)]
                responses = await asyncio.gather(
                    *(post_callback(client, handle.base_url, form) for form in forms)
                )
        finally:
            stop.set()
            writer.join()
        assert sorted({response.status_code for response in responses}) == [200]
    finally:
        handle.stop()
