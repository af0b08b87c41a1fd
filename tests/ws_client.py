"""A minimal GraphQL WebSocket client for tests, speaking `graphql-transport-ws` or legacy `graphql-ws`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class Subscriber:
    def __init__(self, connection: Any, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._next_id = 0

    @classmethod
    async def connect(
        cls, base_url: str, token: str | None, protocol: str = TRANSPORT_WS, payload: dict | None = None
    ) -> Subscriber:
        url = base_url.replace("http://", "ws://") + "/graphql"
        connection = await websockets.connect(url, subprotocols=[protocol], open_timeout=10)
        init = payload if payload is not None else ({"Authorization": f"Bearer {token}"} if token else {})
        await connection.send(json.dumps({"type": "connection_init", "payload": init}))
        subscriber = cls(connection, protocol)
        message = await subscriber._receive(timeout=10)
        if message.get("type") != "connection_ack":
            raise ConnectionError(f"not acknowledged: {message}")
        return subscriber

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        self._next_id += 1
        operation_id = str(self._next_id)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.connection.send(
            json.dumps(
                {"id": operation_id, "type": kind, "payload": {"query": query, "variables": variables or {}}}
            )
        )
        return operation_id

    async def _receive(self, timeout: float) -> dict:
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), timeout=timeout)
            message = json.loads(raw)
            if message.get("type") == "ping":
                await self.connection.send(json.dumps({"type": "pong"}))
                continue
            if message.get("type") in ("ka", "pong"):
                continue
            return message

    async def next(self, timeout: float = 10) -> dict:
        """The next result ({"data": ...} or {"errors": [...]}) of any operation on this socket."""
        message = await self._receive(timeout)
        if message["type"] in ("next", "data"):
            return message["payload"]
        if message["type"] == "error":
            payload = message["payload"]
            return {"errors": payload if isinstance(payload, list) else [payload]}
        if message["type"] == "complete":
            return {"complete": True}
        raise AssertionError(f"unexpected message {message}")

    async def no_data_within(self, seconds: float) -> bool:
        """True when no result with data arrives in `seconds` (a `complete` is not data)."""
        while True:
            try:
                message = await self._receive(seconds)
            except TimeoutError:
                return True
            if message.get("type") != "complete":
                raise AssertionError(f"expected no data, got {message}")

    async def close(self) -> None:
        await self.connection.close()
