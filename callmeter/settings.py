"""Configuration, read once at start-up from the environment and a `.env` file.

Secrets are wrapped in `starlette.datastructures.Secret` so they never print. On the embedded
SQLite default, a missing `JWT_SECRET` / `TWILIO_AUTH_TOKEN` is generated once and kept in a file
beside the database (mode 0600); with PostgreSQL they are required.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from starlette.config import Config
from starlette.datastructures import Secret

from callmeter.billing.money import MoneyError, parse_money
from callmeter.billing.plans import Plan, pay_as_you_go
from callmeter.errors import BadInputError, ConfigError
from callmeter.months import Calendar, check_zone

DEFAULT_DATABASE_URL = "sqlite:///./callmeter.db"
PLACEHOLDERS = {"", "changeme", "change-me", "secret", "xxx", "todo"}


@dataclass(frozen=True)
class Settings:
    database_url: str
    jwt_secret: Secret
    twilio_auth_tokens: tuple[Secret, ...]
    public_base_url: str | None
    price_per_minute: Decimal
    host: str
    port: int
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    stripe_api_key: Secret | None = None
    stripe_api_base: str | None = None
    twilio_account_sid: str | None = None
    twilio_api_base: str | None = None
    reconcile_after_seconds: float = 4 * 3600
    reconcile_interval_seconds: float = 600
    enforce_interval_seconds: float = 1  # how often spend control looks for calls to end
    webhooks_allow_http: bool = False  # http:// and private addresses for webhooks (local use, tests)
    billing_timezone: str = "UTC"  # of customers not seen before; each keeps the zone they got
    # A direct (unpooled) PostgreSQL URL: set when DATABASE_URL goes through a transaction pooler
    # (PgBouncer, Supavisor, Neon's pooler); LISTEN, session locks and migrations use it.
    database_direct_url: str | None = None
    # PostgreSQL connections each `serve` process keeps open, all opened at start: a burst of
    # requests then never waits for a new backend to start (20-90 ms each, bench/README.md).
    database_pool_size: int = 10
    callback_lanes: int = 1  # group-commit batches of status callbacks in the database at once

    @property
    def direct_url(self) -> str:
        """Where LISTEN, session advisory locks and migrations go: the direct URL, else DATABASE_URL."""
        return self.database_direct_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def default_plan(self) -> Plan:
        """The plan of users without an assignment: pay-as-you-go at PRICE_PER_MINUTE."""
        return pay_as_you_go(self.price_per_minute)

    @cached_property
    def default_calendar(self) -> Calendar:
        """The billing calendar a customer gets when first seen: `BILLING_TIMEZONE`."""
        return Calendar.of_zone(self.billing_timezone)


def sqlite_path(database_url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL (None for PostgreSQL or an in-memory database)."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split(":///", 1)[1] if ":///" in database_url else ""
    path = path.split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _embedded_secrets(db_file: Path) -> dict[str, str]:
    """Generate the embedded default's secrets once and keep them beside the database."""
    secret_file = db_file.with_name(db_file.name + ".secrets")
    if secret_file.exists():
        return json.loads(secret_file.read_text())
    values = {
        "JWT_SECRET": secrets.token_urlsafe(32),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
    }
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)
    return values


def _secret(config: Config, name: str, database_url: str) -> str:
    value = config(name, default=None)
    if value is not None and value.strip().lower() not in PLACEHOLDERS:
        return value.strip()
    db_file = sqlite_path(database_url)
    if db_file is None:
        why = "is a placeholder" if value is not None else "is missing"
        raise ConfigError(f"{name} {why}; it is required when DATABASE_URL is not embedded SQLite")
    return _embedded_secrets(db_file)[name]


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    config = Config(env_file if env_file and Path(env_file).exists() else None)
    database_url = config("DATABASE_URL", default=DEFAULT_DATABASE_URL)
    if not database_url.startswith(("sqlite:", "postgresql:", "postgres:")):
        raise ConfigError("DATABASE_URL must start with sqlite:/// or postgresql://")
    database_url = _postgresql(database_url)
    direct_url = config("DATABASE_DIRECT_URL", default=None) or None
    if direct_url is not None:
        if database_url.startswith("sqlite"):
            raise ConfigError("DATABASE_DIRECT_URL is for PostgreSQL behind a pooler; DATABASE_URL is SQLite")
        if not direct_url.startswith(("postgresql:", "postgres:")):
            raise ConfigError("DATABASE_DIRECT_URL must start with postgresql://")
        direct_url = _postgresql(direct_url)
    try:
        price = parse_money(config("PRICE_PER_MINUTE", default="0.05"))
    except MoneyError as exc:
        raise ConfigError(f"PRICE_PER_MINUTE: {exc}") from None
    try:
        port = int(config("PORT", default="8000"))
    except ValueError:
        raise ConfigError("PORT must be a whole number") from None
    tokens = _secret(config, "TWILIO_AUTH_TOKEN", database_url)
    base_url = config("PUBLIC_BASE_URL", default=None)
    return Settings(
        database_url=database_url,
        jwt_secret=Secret(_secret(config, "JWT_SECRET", database_url)),
        twilio_auth_tokens=tuple(Secret(t.strip()) for t in tokens.split(",") if t.strip()),
        public_base_url=base_url.rstrip("/") if base_url else None,
        price_per_minute=price,
        host=config("HOST", default="127.0.0.1"),
        port=port,
        jwt_issuer=config("JWT_ISSUER", default=None),
        jwt_audience=config("JWT_AUDIENCE", default=None),
        stripe_api_key=config("STRIPE_API_KEY", cast=Secret, default=None),
        stripe_api_base=config("STRIPE_API_BASE", default=None),
        twilio_account_sid=config("TWILIO_ACCOUNT_SID", default=None),
        twilio_api_base=config("TWILIO_API_BASE", default=None),
        reconcile_after_seconds=_seconds(config, "RECONCILE_AFTER_SECONDS", 4 * 3600),
        reconcile_interval_seconds=_seconds(config, "RECONCILE_INTERVAL_SECONDS", 600),
        enforce_interval_seconds=_seconds(config, "ENFORCE_INTERVAL_SECONDS", 1),
        webhooks_allow_http=_flag(config("WEBHOOKS_ALLOW_HTTP", default="false"), "WEBHOOKS_ALLOW_HTTP"),
        billing_timezone=_zone(config("BILLING_TIMEZONE", default="UTC")),
        database_direct_url=direct_url,
        database_pool_size=_whole(config, "DATABASE_POOL_SIZE", default=10, most=100),
        callback_lanes=_whole(config, "CALLBACK_LANES", default=1, most=16),
    )


def _whole(config: Config, name: str, *, default: int, most: int) -> int:
    value = config(name, default="") or str(default)
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= most:
        raise ConfigError(f"{name} must be a whole number from 1 to {most}, got {value[:20]!r}")
    return number


def _postgresql(url: str) -> str:
    """`postgres://` (Heroku's, Render's) as SQLAlchemy wants it."""
    return "postgresql:" + url[len("postgres:") :] if url.startswith("postgres:") else url


def _flag(value: str, name: str) -> bool:
    cleaned = value.strip().lower()
    if cleaned in ("true", "1", "yes", "on"):
        return True
    if cleaned in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value[:20]!r}")


def _zone(name: str) -> str:
    try:
        return check_zone(name.strip())
    except BadInputError:
        raise ConfigError(f"BILLING_TIMEZONE: {name[:70]!r} is not an IANA time zone name") from None


def _seconds(config: Config, name: str, default: float) -> float:
    try:
        value = float(config(name, default=str(default)))
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value
