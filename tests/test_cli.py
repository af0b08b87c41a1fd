"""The `callmeter` command as a user runs it: real processes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pytest

from tests.factories import JWT_SECRET, server_env


def run(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callmeter", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(database_url):
    return server_env(database_url)


def test_help_for_every_command(env, tmp_path):
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["migrate", "--help"],
        ["token", "--help"],
        ["agent", "add", "--help"],
        ["simulate", "--help"],
    ):
        result = run(args, env, tmp_path)
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
    result = run(args, env, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("callmeter: error:")
    assert "Traceback" not in result.stderr


def test_missing_secret_with_postgres_is_a_clear_error(tmp_path):
    env = server_env("postgresql://postgres@127.0.0.1:5432/test")
    env.pop("JWT_SECRET")
    result = run(["token", "--user", "1"], env, tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "callmeter: error: JWT_SECRET is missing; it is required when DATABASE_URL is not embedded SQLite"
    )


def test_token_is_accepted_and_carries_the_role(env, tmp_path):
    result = run(["token", "--user", "42", "--admin", "--ttl", "15m"], env, tmp_path)
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 900


async def test_embedded_default_generates_its_secrets_once(tmp_path):
    env = server_env("sqlite:///./callmeter.db")
    env.pop("JWT_SECRET"), env.pop("TWILIO_AUTH_TOKEN"), env.pop("DATABASE_URL")
    first = run(["token", "--user", "1"], env, tmp_path)
    second = run(["token", "--user", "1"], env, tmp_path)
    assert first.returncode == 0 and second.returncode == 0
    secrets_file = tmp_path / "callmeter.db.secrets"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    import json

    secret = json.loads(secrets_file.read_text())["JWT_SECRET"]
    for output in (first.stdout, second.stdout):
        assert jwt.decode(output.strip(), secret, algorithms=["HS256"])["sub"] == "1"


def test_agent_add_then_simulate_matches_usage(server, tmp_path):
    env = server_env(server.database_url)
    result = run(
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
    duplicate = run(["agent", "add", "--user", "2", "--name", "x", "--number", "+18449263376"], env, tmp_path)
    assert duplicate.returncode != 0 and "already belongs" in duplicate.stderr
    result = run(["simulate", "--calls", "40", "--seed", "3", "--url", server.base_url], env, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "matches" in result.stdout and "DOES NOT MATCH" not in result.stdout


def test_simulate_without_agents_says_what_to_do(server, tmp_path):
    result = run(["simulate", "--url", server.base_url], server_env(server.database_url), tmp_path)
    assert result.returncode != 0
    assert "callmeter agent add" in result.stderr


def test_migrate_is_idempotent(env, tmp_path):
    for _ in range(2):
        result = run(["migrate"], env, tmp_path)
        assert result.returncode == 0, result.stderr
