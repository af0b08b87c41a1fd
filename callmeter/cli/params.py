"""What the command groups share: parameter types, the settings, and running work on the services."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from callmeter.errors import CallmeterError
from callmeter.inputs import MAX_ID
from callmeter.months import Month
from callmeter.resolvers.services import Services, open_services
from callmeter.settings import Settings, load_settings

T = TypeVar("T")
_DURATION = re.compile(r"(\d+)([smhd])", re.ASCII)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = timedelta(days=3650)
ID = click.IntRange(1, MAX_ID)


def settings_of(ctx: click.Context) -> Settings:
    """The settings, loaded once per command line (and only by the commands that need them)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = load_settings()
    return root.obj  # type: ignore[no-any-return]


def with_services(ctx: click.Context, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run `work` on freshly opened services (migrating the embedded database first)."""
    settings = settings_of(ctx)

    async def run() -> T:
        async with open_services(settings) as services:
            return await work(services)

    return asyncio.run(run())


def parse_ttl(value: str) -> timedelta:
    found = _DURATION.fullmatch(value.strip())
    amount = found.group(1).lstrip("0") if found else ""
    if not found or not amount:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 24h or 7d", param_hint="--ttl")
    ttl = timedelta(seconds=int(amount) * _SECONDS[found.group(2)]) if len(amount) <= 9 else None
    if ttl is None or ttl > MAX_TTL:
        raise click.BadParameter(f"{value!r} is longer than {MAX_TTL.days}d", param_hint="--ttl")
    return ttl


class Parsed(click.ParamType):
    """A parameter parsed by the service's own parser, its BadInputError as click's one line."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except CallmeterError as exc:
            self.fail(str(exc), param, ctx)


MONTH = Parsed("YYYY-MM", Month.parse)
