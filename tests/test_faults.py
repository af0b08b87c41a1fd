"""Faults: SIGKILL during a storm of callbacks, a PostgreSQL outage, its backends terminated under the
storm. Nothing acknowledged is lost, and a database fault is a 503, never a 500.

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
TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)


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
    assert storm.failures > 0, "requests were in flight when the process died"
    restarted = start_server(database_url, tmp_path)
    try:
        for _ in range(5):  # Twilio retries what was not acknowledged
            await storm.send(restarted.base_url, storm.pending())
        assert storm.pending() == []
        figures = await check_exact(
            storm, restarted.base_url, database_url, f"sigkill-{database_url.split(':')[0]}"
        )
        assert figures["lost"] == 0
        assert storm.refused == {}, "no 5xx: the database was up all along"
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
        assert set(storm.refused) == {503}, f"503, never a 500: {storm.refused}"
        ready = httpx.get(handle.base_url + "/readyz")
        assert ready.status_code == 200
    finally:
        handle.stop()
        conn = await asyncpg.connect(private_postgres.url)
        await conn.execute('DROP DATABASE IF EXISTS "callmeter_outage" WITH (FORCE)')
        await conn.close()


async def test_terminated_backends_mid_storm_are_503_never_500(private_postgres, tmp_path):
    """Backends ended under a storm (`ALLOW_CONNECTIONS false`, `pg_terminate_backend` every 0.1 s
    for 2 s): pool connections die idle, mid-transaction and mid-commit. Callbacks, REST and GraphQL
    all answer 2xx or 503 (counted in the metrics), and the same process takes every event afterwards."""
    name = "callmeter_terminated"
    url = await asyncio.to_thread(create_pg_database, private_postgres.url, name)
    migrate(url)
    await add_agent(url, user_id=1, name="juana", numbers=[NUMBER])
    storm = Storm(calls=150, seed=13)
    handle = start_server(url, tmp_path)
    admin = await asyncpg.connect(private_postgres.url)
    reads: dict[str, int] = {}
    try:
        stop = asyncio.Event()

        async def terminate_backends() -> None:
            while len(storm.acked) < len(storm.events) * 0.3:
                await asyncio.sleep(0.005)
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            for _ in range(20):
                await admin.execute(TERMINATE, name)
                await asyncio.sleep(0.1)
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await asyncio.sleep(0.5)  # the storm goes on while the pool reconnects
            stop.set()

        async def storm_until_stopped() -> None:
            while not stop.is_set() and storm.pending():
                await storm.send(handle.base_url, storm.pending(), stop=stop)
                await asyncio.sleep(0.02)

        async def read_until_stopped() -> None:
            async with httpx.AsyncClient(base_url=handle.base_url, timeout=10) as client:
                while not stop.is_set():
                    rest = await client.get("/api/usage/current", headers=auth(1))
                    reads[f"rest {rest.status_code}"] = reads.get(f"rest {rest.status_code}", 0) + 1
                    body = await graphql(client, "{ usage { current { totalCalls } } }", headers=auth(1))
                    code = body["errors"][0].get("extensions", {}).get("code") if "errors" in body else "ok"
                    reads[f"graphql {code}"] = reads.get(f"graphql {code}", 0) + 1

        await asyncio.gather(storm_until_stopped(), read_until_stopped(), terminate_backends())
        for _ in range(20):  # the same process, no restart: it must recover by itself
            await storm.send(handle.base_url, storm.pending())
            if not storm.pending():
                break
            await asyncio.sleep(0.5)
        assert storm.pending() == []
        figures = await check_exact(storm, handle.base_url, url, "terminated-backends")
        assert figures["lost"] == 0
        assert set(storm.refused) <= {503}, f"503, never a 500: {storm.refused}"
        assert set(reads) <= {"rest 200", "rest 503", "graphql ok", "graphql SERVICE_UNAVAILABLE"}, reads
        counted = callback_outcomes(httpx.get(handle.base_url + "/metrics").text)
        assert counted.get("unavailable", 0) == figures["answers_503"]
        assert sum(counted.values()) == figures["acknowledged"] + figures["answers_503"], counted
        assert httpx.get(handle.base_url + "/readyz").status_code == 200
    finally:
        handle.stop()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def callback_outcomes(exposition: str) -> dict[str, float]:
    """`callmeter_callbacks_total{outcome="..."} N` lines of a /metrics page, by outcome."""
    prefix = 'callmeter_callbacks_total{outcome="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(prefix)
    }


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
