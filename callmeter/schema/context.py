"""The typed context of one GraphQL operation: the viewer, the database, per-request loaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from callmeter.auth import Viewer
from callmeter.billing.plans import Plan
from callmeter.db import agents
from callmeter.db.bus import LiveBus
from callmeter.db.connection import Database
from callmeter.resolvers.scope import require_viewer
from callmeter.settings import Settings

if TYPE_CHECKING:
    from callmeter.schema.types import Agent


@dataclass
class Context:
    db: Database
    settings: Settings
    default_plan: Plan
    viewer: Viewer | None
    bus: LiveBus
    auth_error: str | None = None
    connection_params: dict[str, object] | None = None  # a WebSocket's connection_init payload
    websocket: WebSocket | None = None  # the connection a subscription context belongs to
    agent_loader: DataLoader[int, Agent | None] = field(init=False)
    numbers_loader: DataLoader[int, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.renew_loaders()

    def renew_loaders(self) -> None:
        """Fresh per-operation loaders (a WebSocket keeps one context for its whole life)."""
        self.agent_loader = DataLoader(self._load_agents)
        self.numbers_loader = DataLoader(self._load_numbers)

    def require_viewer(self) -> Viewer:
        return require_viewer(self.viewer, self.auth_error)

    async def _load_agents(self, ids: Sequence[int]) -> list[Agent | None]:
        from callmeter.schema.types import Agent

        async with self.db.connection() as conn:
            found = {row.id: Agent.from_row(row) for row in await agents.fetch_agents(conn, ids=ids)}
        return [found.get(agent_id) for agent_id in ids]

    async def _load_numbers(self, ids: Sequence[int]) -> list[tuple[str, ...]]:
        async with self.db.connection() as conn:
            found = {row.id: row.phone_numbers for row in await agents.fetch_agents(conn, ids=ids)}
        return [found.get(agent_id, ()) for agent_id in ids]
