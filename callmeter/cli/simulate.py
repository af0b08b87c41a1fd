"""`callmeter simulate`: realistic, signed Twilio status callbacks sent to a running service.

Each call gets Twilio's events (initiated, ringing, in-progress, completed, or a failure status), some
delivered twice and some out of order, as Twilio really does. Before and after, it reads each user's
current month through the service's own GraphQL API and checks the change against what it sent.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlencode

import click
import httpx
from twilio.request_validator import RequestValidator

from callmeter.auth import issue_token
from callmeter.cli.params import settings_of, with_services
from callmeter.errors import BadInputError, unreachable_reason
from callmeter.resolvers.agents import list_agents
from callmeter.resolvers.customers import customer
from callmeter.resolvers.services import Services
from callmeter.rows import AgentRow
from callmeter.webhooks.routes import CALLBACK_PATH

FAILURES = ("busy", "no-answer", "canceled", "failed")


@dataclass
class SimulatedCall:
    sid: str
    agent: AgentRow
    outbound: bool
    caller: str
    duration: int | None  # None: never answered
    failure: str | None
    events: list[dict[str, str]] = field(default_factory=list)


def plan_call(rng: random.Random, agent: AgentRow, now: datetime, month_start: datetime) -> SimulatedCall:
    outbound = rng.random() < 0.3
    answered = rng.random() < 0.85
    duration = max(1, int(rng.lognormvariate(4.5, 0.9))) if answered else None
    call = SimulatedCall(
        sid="CA" + secrets.token_hex(16),
        agent=agent,
        outbound=outbound,
        caller=f"+1{rng.randrange(200, 999)}{rng.randrange(1000000, 9999999)}",
        duration=duration,
        failure=None if answered else rng.choice(FAILURES),
    )
    number = rng.choice(agent.phone_numbers)
    common = {
        "CallSid": call.sid,
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": number if outbound else call.caller,
        "To": call.caller if outbound else number,
        "Direction": "outbound-api" if outbound else "inbound",
        "CallbackSource": "call-progress-events",
    }
    # Keep the whole call inside the current month so the before/after check is exact.
    ring_at = max(now - timedelta(seconds=(duration or 0) + 30), month_start + timedelta(seconds=1))
    statuses = [("initiated", ring_at), ("ringing", ring_at + timedelta(seconds=1))]
    if duration is not None:
        answered_at = ring_at + timedelta(seconds=5)
        statuses += [("in-progress", answered_at), ("completed", answered_at + timedelta(seconds=duration))]
    else:
        statuses.append((call.failure or "no-answer", ring_at + timedelta(seconds=20)))
    for sequence, (status, moment) in enumerate(statuses):
        event = {
            **common,
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(moment),
        }
        if status in ("completed", *FAILURES):
            event["CallDuration"] = str(duration or 0)
            event["Duration"] = str(-(-(duration or 0) // 60))
        call.events.append(event)
    if rng.random() < 0.2:
        rng.shuffle(call.events)  # Twilio does not promise order
    if rng.random() < 0.15:
        call.events.append(dict(rng.choice(call.events)))  # nor delivery exactly once
    return call


def _error_of(response: httpx.Response) -> str:
    """What an answer without usage data says went wrong, on one line."""
    try:
        return " ".join(str(response.json()["errors"][0]["message"]).split())
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code} {response.reason_phrase}"


async def _usage(client: httpx.AsyncClient, base_url: str, token: str, user_id: int) -> tuple:
    query = "query($u: ID){ usage(userId: $u){ current { totalCalls totalSeconds totalCostUsd } } }"
    response = await client.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": {"u": str(user_id)}},
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        current = response.json()["data"]["usage"]["current"]
    except (ValueError, KeyError, TypeError):
        raise click.ClickException(
            f"{base_url}/graphql did not answer a usage query: {_error_of(response)}"
        ) from None
    return current["totalCalls"], current["totalSeconds"], current["totalCostUsd"]


@click.command()
@click.option(
    "--calls",
    "count",
    type=click.IntRange(1, 1_000_000),
    default=20,
    show_default=True,
    help="How many calls to simulate.",
)
@click.option("--url", default=None, help="Service base URL (default: http://$HOST:$PORT).")
@click.option("--concurrency", type=click.IntRange(1, 512), default=8, show_default=True)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable run.")
@click.pass_context
def simulate(ctx: click.Context, count: int, url: str | None, concurrency: int, seed: int | None) -> None:
    """Send realistic, signed Twilio status callbacks to a running service."""
    settings = settings_of(ctx)
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    try:
        with_services(
            ctx,
            lambda services: run_simulation(
                services, base_url=base, count=count, concurrency=concurrency, seed=seed
            ),
        )
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {base}: {unreachable_reason(exc)}") from None


async def run_simulation(
    services: Services, *, base_url: str, count: int, concurrency: int, seed: int | None
) -> None:
    settings = services.settings
    agents = [agent for agent in await list_agents(services, user_id=None) if agent.phone_numbers]
    if not agents:
        raise BadInputError("no agents are registered: run `callmeter agent add` first")
    rng = random.Random(seed)
    now = datetime.now(UTC)
    month_starts = {}  # by user: the start of their current month, in their billing zone
    for user in {agent.user_id for agent in agents}:
        calendar = (await customer(services, user_id=user)).calendar
        month_starts[user] = calendar.starts_at(calendar.current(now))
    calls = []
    for _ in range(count):
        agent = rng.choice(agents)
        calls.append(plan_call(rng, agent, now, month_starts[agent.user_id]))
    signed_url = (settings.public_base_url or base_url) + CALLBACK_PATH
    validator = RequestValidator(str(settings.twilio_auth_tokens[0]))
    admin = issue_token(settings, user_id=1, admin=True, ttl=timedelta(minutes=30))
    users = sorted({call.agent.user_id for call in calls})
    outcomes: dict[int, int] = defaultdict(int)
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as client:
        before = {user: await _usage(client, base_url, admin, user) for user in users}
        total_events = sum(len(call.events) for call in calls)
        with click.progressbar(length=total_events, label="Sending callbacks") as bar:

            async def send_call(call: SimulatedCall) -> None:
                async with limit:
                    for event in call.events:
                        signature = validator.compute_signature(signed_url, event)
                        response = await client.post(
                            base_url + CALLBACK_PATH,
                            content=urlencode(event),
                            headers={
                                "X-Twilio-Signature": signature,
                                "Content-Type": "application/x-www-form-urlencoded",
                            },
                        )
                        outcomes[response.status_code] += 1
                        bar.update(1)

            await asyncio.gather(*(send_call(call) for call in calls))
        after = {user: await _usage(client, base_url, admin, user) for user in users}
    answered = [call for call in calls if call.duration is not None]
    click.echo(
        f"sent {total_events} callbacks for {count} calls ({len(answered)} answered); "
        f"responses: {dict(sorted(outcomes.items()))}"
    )
    all_match = True
    for user in users:
        mine = [call for call in answered if call.agent.user_id == user]
        expected = (len(mine), sum(call.duration or 0 for call in mine))
        got = (after[user][0] - before[user][0], after[user][1] - before[user][1])
        match = got == expected
        all_match &= match
        click.echo(
            f"user {user}: +{got[0]} calls, +{got[1]} s, cost now ${after[user][2]} "
            f"(expected +{expected[0]} calls, +{expected[1]} s) "
            f"{'matches' if match else 'DOES NOT MATCH'}"
        )
    if not all_match:
        raise click.ClickException("usage does not match what was sent")
