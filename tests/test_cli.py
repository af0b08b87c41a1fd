"""The `callmeter` command as a user runs it: real processes, one-line errors, no tracebacks."""

from __future__ import annotations

import secrets
import socket
import subprocess

import jwt
import pytest
from alembic import command

from callmeter.db.migrate import alembic_config, head_revision
from tests.conftest import ADMIN_URL, require_backend
from tests.factories import JWT_SECRET, create_pg_database, drop_pg_database, free_port, run_cli, server_env


@pytest.fixture
def env(database_url):
    return server_env(database_url)


@pytest.fixture
def embedded_env(tmp_path):
    return server_env(f"sqlite:///{tmp_path / 'callmeter.db'}")


@pytest.fixture
def missing_database_url():
    require_backend("postgresql")
    return ADMIN_URL.rsplit("/", 1)[0] + "/callmeter_no_such_db"


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("callmeter: error: ") and message in lines[0], lines[0]


def test_help_for_every_command(env, tmp_path):
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["migrate", "--help"],
        ["token", "--help"],
        ["agent", "add", "--help"],
        ["simulate", "--help"],
    ):
        result = run_cli(args, env, tmp_path)
        assert result.returncode == 0 and "Usage:" in result.stdout, args


@pytest.mark.parametrize(
    "args",
    [
        ["token"],
        ["token", "--user", "0"],
        ["token", "--user", "1", "--ttl", "forever"],
        ["agent", "add", "--user", "1", "--name", "x", "--number", "12345"],
        ["agent", "add", "--user", "1", "--name", " ", "--number", "+18449263376"],
        ["simulate", "--calls", "0"],
        ["no-such-command"],
    ],
)
def test_bad_input_is_one_line_on_stderr(env, tmp_path, args):
    result = run_cli(args, env, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("callmeter: error:")
    assert "Traceback" not in result.stderr


def test_missing_secret_with_postgres_is_a_clear_error(tmp_path):
    env = server_env("postgresql://postgres@127.0.0.1:5432/test")
    env.pop("JWT_SECRET")
    result = run_cli(["token", "--user", "1"], env, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "callmeter: error: JWT_SECRET is missing; it is required when DATABASE_URL is not embedded SQLite"
    )


@pytest.mark.parametrize(
    ("name", "value", "most"),
    [("DATABASE_POOL_SIZE", v, 100) for v in ("0", "101", "ten", "-3")]
    + [("CALLBACK_LANES", v, 16) for v in ("0", "17", "two")],
)
def test_a_bad_pool_size_or_lane_count_is_one_line(name, value, most, tmp_path):
    env = server_env("postgresql://postgres@127.0.0.1:5432/test", **{name: value})
    result = run_cli(["token", "--user", "1"], env, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"callmeter: error: {name} must be a whole number from 1 to {most}, got {value!r}"
    )


def test_token_is_accepted_and_carries_the_role(env, tmp_path):
    result = run_cli(["token", "--user", "42", "--admin", "--ttl", "15m"], env, tmp_path)
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 900


async def test_embedded_default_generates_its_secrets_once(tmp_path):
    env = server_env("sqlite:///./callmeter.db")
    env.pop("JWT_SECRET"), env.pop("TWILIO_AUTH_TOKEN"), env.pop("DATABASE_URL")
    first = run_cli(["token", "--user", "1"], env, tmp_path)
    second = run_cli(["token", "--user", "1"], env, tmp_path)
    assert first.returncode == 0 and second.returncode == 0
    secrets_file = tmp_path / "callmeter.db.secrets"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    import json

    secret = json.loads(secrets_file.read_text())["JWT_SECRET"]
    for output in (first.stdout, second.stdout):
        assert jwt.decode(output.strip(), secret, algorithms=["HS256"])["sub"] == "1"


def test_agent_add_then_simulate_matches_usage(server, tmp_path):
    env = server_env(server.database_url)
    result = run_cli(
        [
            "agent",
            "add",
            "--user",
            "1",
            "--name",
            "juana",
            "--number",
            "+18449263376",
            "--number",
            "+18449263377",
        ],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "juana" in result.stdout
    duplicate = run_cli(
        ["agent", "add", "--user", "2", "--name", "x", "--number", "+18449263376"], env, tmp_path
    )
    assert duplicate.returncode != 0 and "already belongs" in duplicate.stderr
    result = run_cli(["simulate", "--calls", "40", "--seed", "3", "--url", server.base_url], env, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "matches" in result.stdout and "DOES NOT MATCH" not in result.stdout


def test_simulate_without_agents_says_what_to_do(server, tmp_path):
    result = run_cli(["simulate", "--url", server.base_url], server_env(server.database_url), tmp_path)
    assert result.returncode != 0
    assert "callmeter agent add" in result.stderr


def test_migrate_is_idempotent(env, tmp_path):
    for _ in range(2):
        result = run_cli(["migrate"], env, tmp_path)
        assert result.returncode == 0, result.stderr


OUT_OF_RANGE_ID = "is not in the range 1<=x<=9223372036854775807"


@pytest.mark.parametrize(
    "args, message",
    [
        (["token", "--user", "1", "--ttl", "99999999999d"], "'99999999999d' is longer than 3650d"),
        (["token", "--user", "1", "--ttl", "9999999d"], "'9999999d' is longer than 3650d"),
        (["token", "--user", "1", "--ttl", "3651d"], "'3651d' is longer than 3650d"),
        (["token", "--user", "99999999999999999999"], OUT_OF_RANGE_ID),
        (
            ["agent", "add", "--user", "9223372036854775808", "--name", "x", "--number", "+18449263376"],
            OUT_OF_RANGE_ID,
        ),
        (
            ["plan", "assign", "--user", "9223372036854775808", "--plan", "1", "--from", "2026-01"],
            OUT_OF_RANGE_ID,
        ),
        (
            ["plan", "assign", "--user", "1", "--plan", "9223372036854775808", "--from", "2026-01"],
            "planId must be a positive whole number",
        ),
        (["invoice", "--month", "2026-01", "--user", "9223372036854775808"], OUT_OF_RANGE_ID),
        (
            ["plan", "add", "--name", "b", "--kind", "pay_as_you_go", "--rate", "1e30"],
            "ratePerMinute must be at most 1000000",
        ),
        (
            ["plan", "add", "--name", "b", "--kind", "subscription", "--fee", "1e30", "--overage", "0.1"],
            "monthlyFeeUsd must be at most 1000000",
        ),
        (
            ["plan", "add", "--name", "b", "--kind", "subscription", "--fee", "1", "--overage", "1e7"],
            "overageRatePerMinute must be at most 1000000",
        ),
        (
            [
                "plan",
                "add",
                "--name",
                "b",
                "--kind",
                "subscription",
                "--fee",
                "1",
                "--overage",
                "0.1",
                "--included",
                "99999999999999",
            ],
            "includedMinutes must be between 0 and 1000000000",
        ),
        (
            [
                "plan",
                "add",
                "--name",
                "b",
                "--kind",
                "graduated",
                "--tier",
                "99999999999:0.1",
                "--tier",
                "max:0.01",
            ],
            "tier bounds must be between 1 and 1000000000 minutes",
        ),
        (
            ["plan", "add", "--name", "b", "--kind", "volume", "--tier", "10:0.1", "--tier", "max:1e30"],
            "tiers[1].ratePerMinute must be at most 1000000",
        ),
        (
            [
                "plan",
                "add",
                "--name",
                "b",
                "--kind",
                "pay_as_you_go",
                "--rate",
                "1",
                "--increment",
                "99999999999999999999",
            ],
            "billingIncrementSeconds must be between 1 and 3600",
        ),
        (["reconcile", "--older-than", "nan"], "'nan' is not a valid integer"),
    ],
)
def test_out_of_range_input_is_one_clear_line(embedded_env, tmp_path, args, message):
    assert_one_line_error(run_cli(args, embedded_env, tmp_path), message)


def test_a_token_may_live_ten_years(embedded_env, tmp_path):
    result = run_cli(["token", "--user", "9223372036854775807", "--ttl", "3650d"], embedded_env, tmp_path)
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "9223372036854775807"
    assert claims["exp"] - claims["iat"] == 3650 * 86400


def test_simulate_against_nothing_listening_is_one_line(embedded_env, tmp_path):
    added = run_cli(
        ["agent", "add", "--user", "1", "--name", "a", "--number", "+18449263376"], embedded_env, tmp_path
    )
    assert added.returncode == 0, added.stderr
    result = run_cli(["simulate", "--url", "http://127.0.0.1:1", "--calls", "1"], embedded_env, tmp_path)
    assert_one_line_error(result, "cannot reach http://127.0.0.1:1: connection refused")


@pytest.mark.parametrize(
    "args",
    [
        ["migrate"],
        ["agent", "add", "--user", "1", "--name", "a", "--number", "+18449263376"],
        ["plan", "list"],
        ["serve", "--port", "1"],
    ],
)
def test_a_missing_postgres_database_is_one_line(missing_database_url, tmp_path, args):
    where = missing_database_url.split("@", 1)[1].split("/", 1)[0]
    result = run_cli(args, server_env(missing_database_url), tmp_path)
    assert_one_line_error(result, f'database "callmeter_no_such_db" does not exist on {where}')


def test_refused_unreachable_and_unmigrated_postgres_are_one_line(tmp_path):
    require_backend("postgresql")
    database_url = ADMIN_URL
    server = database_url.split("@", 1)[1].split("/", 1)[0]
    no_role = f"postgresql://callmeter_no_such_role@{server}/postgres"
    result = run_cli(["plan", "list"], server_env(no_role), tmp_path)
    assert_one_line_error(result, f'role "callmeter_no_such_role" does not exist on {server}')
    result = run_cli(["migrate"], server_env("postgresql://postgres@127.0.0.1:1/x"), tmp_path)
    assert_one_line_error(result, "cannot reach the database at 127.0.0.1:1: connection refused")
    unmigrated = create_pg_database(database_url, f"callmeter_unmigrated_{secrets.token_hex(3)}")
    try:
        listed = run_cli(["plan", "list"], server_env(unmigrated), tmp_path)
        served = run_cli(["serve", "--port", str(free_port())], server_env(unmigrated), tmp_path)
        # New code deployed on a database one migration behind: serve says so before starting.
        command.upgrade(alembic_config(unmigrated), "0004")
        behind = run_cli(["serve", "--port", str(free_port())], server_env(unmigrated), tmp_path)
    finally:
        drop_pg_database(database_url, unmigrated)
    for result in (listed, served):
        assert_one_line_error(result, "the database has no callmeter tables: run `callmeter migrate`")
    assert_one_line_error(
        behind, f"the database schema is at revision 0004, this callmeter needs {head_revision()}: run"
    )


def test_serve_on_a_port_in_use_is_one_line(embedded_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["serve", "--port", str(port)], embedded_env, tmp_path)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use")
