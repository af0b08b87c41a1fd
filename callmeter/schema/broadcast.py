"""Shared execution of identical live lists: one GraphQL execution per change, not one per subscriber.

A customer may keep the dashboard open on many screens. Executing the same `activeCalls` selection for
each of them on every change costs ~0.4 ms a subscriber (measured in bench/subscriptions.py), so a
thousand subscribers would take 400 ms per change. Subscribers whose operation is the same document,
operation name and variables, run by the same viewer (so authorisation is identical), share one
upstream execution whose results are fanned out to all of them. Only `activeCalls` is shared: its
every result is the whole current state, so a subscriber who joins late starts from the latest one.
Event streams (`callEvents`, `usageUpdated`) must not replay the past and are executed per subscriber.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.utils.logging import StrawberryLogger

from callmeter.errors import CallmeterError, DatabaseUnavailableError

log = logging.getLogger("callmeter.graphql")

SHARED_ROOT_FIELDS = frozenset({"activeCalls"})
_END = object()


def shared_key(
    query: str | None, variables: dict[str, Any] | None, operation_name: str | None, context: Any
) -> tuple[object, ...] | None:
    """The sharing key of an operation, or None when it must run on its own."""
    viewer = getattr(context, "viewer", None)
    if not query or viewer is None:
        return None
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [node for node in operations if node.name and node.name.value == operation_name]
    if len(operations) != 1 or len(document.definitions) != 1:
        return None
    operation = operations[0]
    selections = operation.selection_set.selections
    if (
        operation.operation is not OperationType.SUBSCRIPTION
        or len(selections) != 1
        or not isinstance(selections[0], FieldNode)
        or selections[0].name.value not in SHARED_ROOT_FIELDS
    ):
        return None
    return (
        query,
        operation_name,
        json.dumps(variables or {}, sort_keys=True, default=str),
        viewer.user_id,
        viewer.is_admin,
    )


@dataclass
class _Group:
    members: set[asyncio.Queue[Any]] = field(default_factory=set)
    latest: Any = None
    pump: asyncio.Task[None] | None = None


class SharedStreams:
    def __init__(self) -> None:
        self._groups: dict[tuple[object, ...], _Group] = {}

    def join(self, key: tuple[object, ...], start: Callable[[], Awaitable[Any]]) -> AsyncGenerator[Any, None]:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
            group.pump = asyncio.create_task(self._pump(key, group, start))
        return self._member(key, group)

    async def _pump(
        self, key: tuple[object, ...], group: _Group, start: Callable[[], Awaitable[Any]]
    ) -> None:
        source = await start()
        try:
            async for result in source:
                group.latest = result
                for queue in list(group.members):
                    queue.put_nowait(result)
        finally:
            if self._groups.get(key) is group:
                del self._groups[key]
            for queue in list(group.members):
                queue.put_nowait(_END)
            with suppress(Exception):
                await source.aclose()

    async def _member(self, key: tuple[object, ...], group: _Group) -> AsyncGenerator[Any, None]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        group.members.add(queue)
        if group.latest is not None:
            queue.put_nowait(group.latest)
        try:
            while True:
                result = await queue.get()
                while queue.qsize() and not _is_end(result):
                    newer = queue.get_nowait()  # a slow member skips to the newest whole list
                    if _is_end(newer):
                        queue.put_nowait(newer)
                        break
                    result = newer
                if _is_end(result):
                    return
                yield result
        finally:
            group.members.discard(queue)
            if not group.members and group.pump is not None:
                if self._groups.get(key) is group:
                    del self._groups[key]
                group.pump.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await group.pump


def _is_end(item: object) -> bool:
    return item is _END


class Schema(strawberry.Schema):
    """strawberry.Schema whose identical live lists share one execution (see the module docstring),
    and which logs a traceback only for errors that are not the client's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shared = SharedStreams()

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Any = None,
    ) -> Any:
        key = shared_key(query, variable_values, operation_name, context_value)
        start = functools.partial(
            super().stream,
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        if key is None or operation_extensions:
            return await start()
        return self._shared.join(key, start)

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            original = error.original_error
            client_error = isinstance(original, CallmeterError) and original.http_status < 500
            if original is None or client_error:  # None: the document failed parsing or validation
                log.info("GraphQL request refused: %s", error.message)
            elif isinstance(original, DatabaseUnavailableError):
                log.warning("GraphQL request failed: %s", error.message)
            else:
                StrawberryLogger.error(error, execution_context)
