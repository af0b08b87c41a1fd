"""Plain helpers the tests build on: signed Twilio callbacks, tokens, agents, live servers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
import jwt
from twilio.request_validator import RequestValidator

from callmeter.db.connection import Database
from callmeter.db.tables import metadata
from callmeter.errors import DatabaseUnavailableError

# The suite's PostgreSQL tests run again through a transaction pooler (PgBouncer in transaction
# mode, .ci/pgbouncer) as the `pgbouncer` backend: its URLs are the pooler's, and the service and
# the tests' own connections are given the direct URL beside it, as a deployment would be.
DIRECT_BASE = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test").rsplit("/", 1)[
    0
]
POOLER_BASE = os.environ.get("CALLMETER_TEST_POOLER_URL", "postgresql://postgres@127.0.0.1:6432/test").rsplit(
    "/", 1
)[0]


def pooled(url: str) -> str:
    """The same database through the pooler."""
    return POOLER_BASE + "/" + url.rsplit("/", 1)[1]


def direct_of(url: str) -> str | None:
    """The direct URL of a database reached through the pooler; None for any other URL."""
    if url.startswith(POOLER_BASE + "/"):
        return DIRECT_BASE + "/" + url.rsplit("/", 1)[1]
    return None


def direct(url: str) -> str:
    """The URL to use for what needs a session of its own (migrations, DDL, admin work)."""
    return direct_of(url) or url


JWT_SECRET = "test-jwt-secret-0123456789abcdef0123"
TWILIO_TOKEN = "test-twilio-token-0123456789abcdef"
CALLBACK_PATH = "/webhooks/twilio/status"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerHandle:
    base_url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def callback_url(self) -> str:
        return self.base_url + CALLBACK_PATH

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLMETER_")}
    env.update(
        DATABASE_URL=database_url,
        JWT_SECRET=JWT_SECRET,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        PRICE_PER_MINUTE="0.05",
    )
    env.pop("PUBLIC_BASE_URL", None)
    env.pop("DATABASE_DIRECT_URL", None)
    if direct_of(database_url):
        env["DATABASE_DIRECT_URL"] = direct(database_url)
    env.update(extra)
    return env


def start_server(
    database_url: str, workdir: Path, *, port: int | None = None, extra_args: tuple[str, ...] = (), **env: str
) -> ServerHandle:
    """Start `callmeter serve` as a real process and wait until it is ready."""
    port = port or free_port()
    log_path = workdir / f"serve-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "callmeter", "serve", "--port", str(port), *extra_args],
        env=server_env(database_url, **env),
        cwd=workdir,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    handle = ServerHandle(f"http://127.0.0.1:{port}", database_url, process, log_path, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"callmeter serve exited early:\n{handle.log()}")
        try:
            if httpx.get(handle.base_url + "/readyz", timeout=1).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    handle.stop()
    raise RuntimeError(f"callmeter serve did not become ready:\n{handle.log()}")


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, *, binary: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`callmeter ARGS` as a user runs it: a process of its own, output captured (text unless
    `binary`, for PDFs)."""
    return subprocess.run(
        [sys.executable, "-m", "callmeter", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=not binary,
        timeout=timeout,
    )


def _admin(admin_url: str, statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def create_pg_database(admin_url: str, name: str) -> str:
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(admin_url: str, url: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def clear_tables(database_url: str) -> None:
    names = [table.name for table in reversed(metadata.sorted_tables)]
    db = Database(database_url, min_size=1, max_size=1, direct_url=direct_of(database_url))
    await db.connect()
    try:
        for attempt in range(5):
            try:
                async with db.transaction() as conn:
                    if db.is_sqlite:
                        for name in names:
                            await conn.execute(f"DELETE FROM {name}")
                    else:
                        await conn.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
                return
            except DatabaseUnavailableError as exc:
                # The running server's background passes read these tables: TRUNCATE's exclusive
                # locks, taken table by table, can deadlock with one of them. Try again.
                if "deadlock" not in str(exc) or attempt == 4:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await db.disconnect()


async def open_db(database_url: str) -> Database:
    db = Database(database_url, min_size=1, max_size=4, direct_url=direct_of(database_url))
    await db.connect()
    return db


def make_token(
    user_id: int | str,
    *,
    admin: bool = False,
    secret: str = JWT_SECRET,
    ttl: timedelta = timedelta(hours=1),
    **claims: object,
) -> str:
    payload: dict[str, object] = {"sub": str(user_id), "exp": datetime.now(UTC) + ttl}
    if admin:
        payload["role"] = "admin"
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


def auth(user_id: int | str, *, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, admin=admin)}"}


def sign(url: str, form: dict[str, str], token: str = TWILIO_TOKEN, algorithm: str | None = None) -> str:
    return RequestValidator(token).compute_signature(url, form, algorithm)


def callback_form(
    call_sid: str,
    status: str,
    *,
    sequence: int,
    at: datetime,
    duration: int | None = None,
    to: str = "+18449263376",
    caller: str = "+15550001111",
    direction: str = "inbound",
) -> dict[str, str]:
    form = {
        "CallSid": call_sid,
        "AccountSid": "AC" + "1" * 32,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        "Timestamp": format_datetime(at),
        "From": caller if direction == "inbound" else to,
        "To": to if direction == "inbound" else caller,
        "Direction": direction,
        "CallbackSource": "call-progress-events",
        "ApiVersion": "2010-04-01",
    }
    if duration is not None:
        form["CallDuration"] = str(duration)
        form["Duration"] = str(-(-duration // 60))
    return form


def call_events(
    call_sid: str,
    *,
    answered_at: datetime,
    duration: int,
    to: str = "+18449263376",
    direction: str = "inbound",
) -> list[dict[str, str]]:
    """Twilio's four events of an answered call that lasted `duration` seconds, in order."""
    ring = answered_at - timedelta(seconds=6)
    return [
        callback_form(call_sid, "initiated", sequence=0, at=ring, to=to, direction=direction),
        callback_form(
            call_sid, "ringing", sequence=1, at=ring + timedelta(seconds=1), to=to, direction=direction
        ),
        callback_form(call_sid, "in-progress", sequence=2, at=answered_at, to=to, direction=direction),
        callback_form(
            call_sid,
            "completed",
            sequence=3,
            at=answered_at + timedelta(seconds=duration),
            duration=duration,
            to=to,
            direction=direction,
        ),
    ]


async def post_callback(
    client: httpx.AsyncClient,
    base_url: str,
    form: dict[str, str],
    *,
    query: str = "",
    token: str = TWILIO_TOKEN,
    signature: str | None = None,
) -> httpx.Response:
    url = base_url + CALLBACK_PATH + (f"?{query}" if query else "")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature if signature is not None else sign(url, form, token),
    }
    return await client.post(url, content=urlencode(form), headers=headers)


async def add_agent(database_url: str, *, user_id: int, name: str, numbers: list[str]) -> int:
    from callmeter.db.agents import insert_agent

    db = await open_db(database_url)
    try:
        async with db.transaction() as conn:
            return (await insert_agent(conn, user_id=user_id, name=name, numbers=numbers)).id
    finally:
        await db.disconnect()


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> dict:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return response.json()


def batches(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]
