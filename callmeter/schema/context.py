"""The typed context of one GraphQL operation: the viewer, the services, per-operation loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from callmeter.auth import Viewer
from callmeter.resolvers import agents
from callmeter.resolvers.scope import require_viewer
from callmeter.resolvers.services import Services
from callmeter.rows import AgentRow


@dataclass
class Context:
    services: Services
    viewer: Viewer | None
    auth_error: str | None = None
    connection_params: dict[str, object] | None = None  # a WebSocket's connection_init payload
    websocket: WebSocket | None = None  # the connection a subscription context belongs to
    agents: DataLoader[int, AgentRow | None] = field(init=False)

    def __post_init__(self) -> None:
        self.renew_loaders()

    def renew_loaders(self) -> None:
        """Fresh per-operation loaders (a WebSocket keeps one context for its whole life)."""
        self.agents = DataLoader(lambda ids: agents.agents_by_ids(self.services, ids))

    def require_viewer(self) -> Viewer:
        return require_viewer(self.viewer, self.auth_error)


Info: TypeAlias = strawberry.Info[Context, None]
