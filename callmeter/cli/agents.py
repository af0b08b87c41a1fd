"""`callmeter agent add`: register a voice agent."""

from __future__ import annotations

import click

from callmeter.cli.params import ID, with_services
from callmeter.resolvers import agents


@click.group()
def agent() -> None:
    """Manage voice agents."""


@agent.command("add")
@click.option("--user", "user_id", type=ID, required=True, help="Owner's id.")
@click.option("--name", required=True, help="Agent name shown on the dashboard.")
@click.option(
    "--number", "numbers", multiple=True, required=True, help="E.164 number the agent answers (repeatable)."
)
@click.option("--voice-url", default=None, help="Where the voice gate sends an allowed call (TwiML URL).")
@click.pass_context
def agent_add(
    ctx: click.Context, user_id: int, name: str, numbers: tuple[str, ...], voice_url: str | None
) -> None:
    """Register a voice agent and the numbers it answers."""
    row = with_services(
        ctx,
        lambda services: agents.create_agent(
            services, user_id=user_id, name=name, numbers=numbers, voice_url=voice_url
        ),
    )
    gate = f" (voice gate to {row.voice_url})" if row.voice_url else ""
    click.echo(f"agent {row.id} ({row.name}) for user {row.user_id}: {', '.join(row.phone_numbers)}{gate}")
